//! Accounts, API keys and retention settings (§1): a settings change is recorded with its
//! retention job in one write; [`super::retention`] carries it to existing artifacts.

use super::retention::RetentionImpact;
use super::*;
use crate::domain::{new_id, Account, AccountId, ApiKey, RetentionSettings, SettingsPatch};
use crate::storage::StorageError;

impl Engine {
    /// Creates an account; returns it with its API key, which is never retrievable again.
    pub async fn create_account(
        &self,
        name: &str,
        settings: RetentionSettings,
    ) -> Result<(Account, ApiKey)> {
        settings.validate()?;
        let now = self.now();
        let account = Account::new(new_id(now), name.to_owned(), settings, now);
        let key = ApiKey::generate();
        self.backends
            .accounts
            .create_account(&account, &key.hash())
            .await?;
        tracing::info!(account_id = %account.id, "account created");
        Ok((account, key))
    }

    pub async fn authenticate(&self, key: &ApiKey) -> Result<Option<Account>> {
        Ok(self
            .backends
            .accounts
            .account_by_key_hash(&key.hash())
            .await?)
    }

    pub async fn account(&self, id: AccountId) -> Result<Account> {
        self.backends
            .accounts
            .account(id)
            .await?
            .ok_or(EngineError::NotFound)
    }

    pub async fn new_api_key(&self, id: AccountId) -> Result<ApiKey> {
        self.account(id).await?;
        let key = ApiKey::generate();
        self.backends
            .accounts
            .add_api_key(id, &key.hash(), self.now())
            .await?;
        Ok(key)
    }

    /// Applies a settings change (§1): validated as a whole and refused without change when
    /// invalid. A change that can shorten existing schedules is recorded together with a
    /// retention job in the same write; any sweeper carries it to the existing artifacts
    /// in bounded batches ([`Engine::advance_retention_jobs`]), and reads apply it at once,
    /// so nothing is served past the new deadline meanwhile.
    pub async fn update_settings(&self, id: AccountId, patch: &SettingsPatch) -> Result<Account> {
        let current = self.account(id).await?;
        let Some(next) = self.changed_account(&current, patch)? else {
            return Ok(current);
        };
        match self
            .backends
            .accounts
            .update_account(&next, current.policy_version)
            .await
        {
            Err(StorageError::Conflict { .. }) => return Err(EngineError::Concurrent),
            other => other?,
        }
        tracing::info!(account_id = %id, policy_version = next.policy_version, mode = next.settings.mode().as_str(), retention_job = next.retention_job.is_some(), "retention settings changed");
        if next.retention_job.is_some() {
            self.deadlines.notify_one();
        }
        Ok(next)
    }

    /// A dry run of [`Engine::update_settings`]: the same validation (refused alike), then
    /// the account as the change would leave it and what the change would do to its
    /// existing artifacts ([`RetentionImpact`]); nothing is written, no job recorded.
    pub async fn preview_settings(
        &self,
        id: AccountId,
        patch: &SettingsPatch,
    ) -> Result<(Account, RetentionImpact)> {
        let current = self.account(id).await?;
        let next = self
            .changed_account(&current, patch)?
            .unwrap_or_else(|| current.clone());
        let impact = self.retention_impact(&current, &next).await?;
        Ok((next, impact))
    }

    /// `current` with `patch` applied as its next policy version; `None` when the patch
    /// changes nothing. Refused as a whole when the result is invalid (§1).
    fn changed_account(&self, current: &Account, patch: &SettingsPatch) -> Result<Option<Account>> {
        let settings = current.settings.patched(patch)?;
        Ok((settings != current.settings).then(|| current.with_settings(settings, self.now())))
    }
}
