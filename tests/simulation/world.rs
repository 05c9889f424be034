//! A simulated deployment: shared stores, 1–4 instances of Lethe over them (each with its
//! own fault plan), a manual clock, and the oracle. `run` drives a step list and checks the
//! oracle's invariants as it goes; the first violation ends the run.

use bytes::Bytes;
use chrono::{Duration, TimeZone, Utc};
use futures::stream;
use lethe::clock::{Clock, ManualClock};
use lethe::config::Config;
use lethe::domain::{
    Account, ArtifactId, ArtifactKind, ArtifactState, Content, Region, RetentionSettings,
    SettingsPatch, TranscriptId,
};
use lethe::engine::reconcile::ReconcileOptions;
use lethe::engine::{
    AudioSource, Engine, EngineError, LlmGatewayRequest, NewTranscript, StreamingSession,
    UploadRead,
};
use lethe::metrics::Metrics;
use lethe::startup::App;
use lethe::storage::{Backends, ByteStream, TranscriptQuery};
use lethe::testing::faults::{faulty, Faults};
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use crate::oracle::{OAccount, OArtifact, OTranscript, Oracle, Time};
use crate::steps::{AccountKind, Change, Step};

/// The claim lease of the simulated deployment (Lethe's default).
const LEASE_MINUTES: i64 = 5;

pub struct Instance {
    pub app: App,
    pub faults: Arc<Faults>,
    pub up: bool,
}

/// What a run covered.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub steps: usize,
    pub simulated_hours: i64,
    pub crashes: u64,
    pub faults_injected: u64,
    pub passes: u64,
    pub clean_passes: u64,
    pub deletions: u64,
    pub artifacts: u64,
    pub checks: u64,
}

pub struct World {
    pub aws: bool,
    config: Config,
    clock: ManualClock,
    base: Backends,
    /// Reads for the checks go through an instance that never fails.
    observer: Engine,
    instances: Vec<Instance>,
    /// Metrics of instances that crashed and were replaced (their counters still count).
    retired: Vec<Arc<Metrics>>,
    oracle: Oracle,
    rng: rand::rngs::StdRng,
    seed: u64,
    start: Time,
    /// Start of the last pass that ran with no fault and no crash, and ended.
    last_clean_pass: Option<Time>,
    pub stats: Stats,
    _dir: tempfile::TempDir,
}

type Check = Result<(), String>;

fn body(bytes: &'static [u8]) -> ByteStream {
    Box::pin(stream::iter(vec![Ok(Bytes::from_static(bytes))]))
}

fn hours(h: i64) -> Duration {
    Duration::hours(h)
}

impl World {
    pub async fn new(seed: u64, aws: bool) -> World {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed ^ 0x5eed);
        // Any day and hour of 2026, so runs cross midnights at different points.
        let start = Utc
            .with_ymd_and_hms(2026, 1, 1, 0, 0, 0)
            .single()
            .expect("time")
            + Duration::minutes(rng.gen_range(0..(360 * 24 * 60)));
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::defaults();
        config.data_dir = dir.path().to_owned();
        config.sweep_batch_size = rng.gen_range(3..=40);
        if seed.is_multiple_of(3) {
            config.indefinite_retention = Some(Duration::days(7));
        }
        lethe::testing::apply_profile(&mut config, start).await;
        let clock = ManualClock::new(start);
        let base = Backends::from_config(&config, Arc::new(clock.clone()))
            .await
            .expect("stores open");
        let observer = App::with_backends(config.clone(), Arc::new(clock.clone()), base.clone())
            .engine
            .clone();
        let oracle = Oracle::new(config.platform_policy());
        let count = rng.gen_range(1..=4);
        let mut world = World {
            aws,
            config,
            clock,
            base,
            observer,
            instances: Vec::new(),
            retired: Vec::new(),
            oracle,
            rng,
            seed,
            start,
            last_clean_pass: None,
            stats: Stats::default(),
            _dir: dir,
        };
        for i in 0..count {
            let instance = world.fresh_instance(i as u64);
            world.instances.push(instance);
        }
        world
    }

    fn fresh_instance(&self, salt: u64) -> Instance {
        let faults = Faults::new(self.seed.wrapping_mul(31).wrapping_add(salt));
        let app = App::with_backends(
            self.config.clone(),
            Arc::new(self.clock.clone()),
            faulty(&self.base, &faults),
        );
        Instance {
            app,
            faults,
            up: true,
        }
    }

    fn now(&self) -> Time {
        self.clock.now()
    }

    /// An up instance for the next client call, round robin; `None` when all are down.
    fn pick(&mut self) -> Option<usize> {
        let up: Vec<usize> = (0..self.instances.len())
            .filter(|i| self.instances[*i].up)
            .collect();
        if up.is_empty() {
            return None;
        }
        Some(up[self.rng.gen_range(0..up.len())])
    }

    /// After a call: an instance that crashed is restarted (a new process, a new id).
    fn restart_crashed(&mut self) {
        for i in 0..self.instances.len() {
            if self.instances[i].faults.has_crashed() {
                self.stats.crashes += 1;
                self.stats.faults_injected += self.instances[i].faults.injected().len() as u64;
                let fresh = self.fresh_instance(1000 + self.stats.crashes);
                let old = std::mem::replace(&mut self.instances[i], fresh);
                self.retired.push(old.app.engine.metrics().clone());
            }
        }
    }

    fn injected(&self, i: usize) -> usize {
        self.instances[i].faults.injected().len()
    }

    pub async fn run(&mut self, steps: &[Step]) -> Result<(), (usize, String)> {
        let trace = std::env::var_os("LETHE_SIM_TRACE").is_some();
        for (n, step) in steps.iter().enumerate() {
            self.stats.steps = n + 1;
            if trace {
                eprintln!("step {n} at {}: {step:?}", self.now());
            }
            self.step(step).await.map_err(|e| (n, e))?;
            self.restart_crashed();
            let full = !self.aws
                || matches!(
                    step,
                    Step::Sweep { .. }
                        | Step::Advance { .. }
                        | Step::Reconcile { .. }
                        | Step::CustomerDelete { .. }
                );
            if full {
                self.check().await.map_err(|e| (n, e))?;
            }
        }
        // The end: heal everything, bring every instance up, let the deadlines pass and
        // sweep; nothing may be left behind.
        for i in 0..self.instances.len() {
            self.instances[i].faults.heal();
            self.instances[i].up = true;
        }
        self.clock.advance(Duration::minutes(LEASE_MINUTES + 1));
        self.step(&Step::Sweep { instances: 1 })
            .await
            .map_err(|e| (steps.len(), e))?;
        self.check().await.map_err(|e| (steps.len(), e))?;
        for i in 0..self.instances.len() {
            self.stats.faults_injected += self.injected(i) as u64;
        }
        self.stats.simulated_hours = (self.now() - self.start).num_hours();
        self.stats.artifacts = self.oracle.artifacts.len() as u64;
        Ok(())
    }

    async fn step(&mut self, step: &Step) -> Check {
        match step {
            Step::CreateAccount(kind) => self.create_account(*kind).await,
            Step::ChangeSettings { account, change } => self.change(*account, *change).await,
            Step::Upload { account } => self.upload(*account).await,
            Step::CreateTranscript {
                account,
                from_upload,
            } => self.create_transcript(*account, *from_upload).await,
            Step::Process { transcript } => self.process(*transcript).await,
            Step::Finish {
                transcript,
                racers,
                error,
            } => self.finish(*transcript, *racers, *error).await,
            Step::SpeechUnderstanding { transcript } => self.speech(*transcript).await,
            Step::CustomerDelete { transcript } => self.customer_delete(*transcript).await,
            Step::Gateway {
                account,
                provider,
                on_transcript,
            } => self.gateway(*account, provider, *on_transcript).await,
            Step::Streaming {
                account,
                ended_minutes_ago,
            } => self.streaming(*account, *ended_minutes_ago).await,
            Step::DeleteStandalone { which } => self.delete_standalone(*which).await,
            Step::Advance { minutes } => {
                self.clock.advance(Duration::minutes(*minutes));
                Ok(())
            }
            Step::Sweep { instances } => self.sweep(*instances).await,
            Step::Down { instance } => {
                let i = instance % self.instances.len();
                self.instances[i].up = false;
                Ok(())
            }
            Step::Up { instance } => {
                let i = instance % self.instances.len();
                self.instances[i].up = true;
                Ok(())
            }
            Step::Crash {
                instance,
                after_calls,
            } => {
                let i = instance % self.instances.len();
                self.instances[i].faults.crash_after(*after_calls);
                Ok(())
            }
            Step::Flaky {
                instance,
                per_mille,
            } => {
                let i = instance % self.instances.len();
                self.instances[i]
                    .faults
                    .fail_randomly(f64::from(*per_mille) / 1000.0);
                Ok(())
            }
            Step::Heal { instance } => {
                let i = instance % self.instances.len();
                self.instances[i].faults.heal();
                Ok(())
            }
            Step::Reconcile { repair } => self.reconcile(*repair).await,
        }
    }

    // ---- accounts --------------------------------------------------------------------

    async fn create_account(&mut self, kind: AccountKind) -> Check {
        let Some(i) = self.pick() else { return Ok(()) };
        let settings = match kind {
            AccountKind::Ttl(h) => RetentionSettings {
                transcript_ttl: Some(hours(h)),
                ..Default::default()
            },
            AccountKind::Baa => RetentionSettings {
                baa: true,
                ..Default::default()
            },
            AccountKind::Default => RetentionSettings::default(),
            AccountKind::Zdr => RetentionSettings {
                zero_data_retention: true,
                ..Default::default()
            },
            AccountKind::OptedOut => RetentionSettings {
                model_training_opt_out: true,
                ..Default::default()
            },
            AccountKind::Eu => RetentionSettings {
                region: Region::Eu,
                ..Default::default()
            },
        };
        let lethe = self.instances[i].app.engine.clone();
        if let Ok((account, _key)) = lethe.create_account("sim", settings.clone()).await {
            self.oracle.accounts.push(OAccount {
                id: account.id,
                versions: vec![(account.policy_version, settings, account.created_at)],
            });
        }
        Ok(())
    }

    fn account_index(&self, n: usize) -> Option<usize> {
        (!self.oracle.accounts.is_empty()).then(|| n % self.oracle.accounts.len())
    }

    /// The account as the engine has it now (what an authenticated request carries).
    async fn engine_account(&self, a: usize) -> Option<Account> {
        self.observer.account(self.oracle.accounts[a].id).await.ok()
    }

    async fn change(&mut self, account: usize, change: Change) -> Check {
        let Some(a) = self.account_index(account) else {
            return Ok(());
        };
        let Some(i) = self.pick() else { return Ok(()) };
        let patch = match change {
            Change::Ttl(h) => SettingsPatch {
                transcript_ttl: Some(Some(hours(h))),
                ..Default::default()
            },
            Change::RemoveTtl => SettingsPatch {
                transcript_ttl: Some(None),
                ..Default::default()
            },
            Change::ExecuteBaa => SettingsPatch {
                baa: Some(true),
                ..Default::default()
            },
            Change::UploadTtl(h) => SettingsPatch {
                upload_ttl: Some(hours(h)),
                ..Default::default()
            },
            Change::OptOut => SettingsPatch {
                model_training_opt_out: Some(true),
                ..Default::default()
            },
        };
        let lethe = self.instances[i].app.engine.clone();
        let id = self.oracle.accounts[a].id;
        let result = lethe.update_settings(id, &patch).await;
        // Whatever the call answered, the account is what the store holds: the write is
        // atomic. The oracle records each version the engine ended up with.
        let stored = self
            .observer
            .account(id)
            .await
            .map_err(|e| format!("account {id} unreadable: {e}"))?;
        let (version, settings) = self.oracle.accounts[a].current();
        let expected = settings.patched(&patch);
        match (&result, expected) {
            (Ok(_), Ok(next)) => {
                if stored.settings != next {
                    return Err(format!(
                        "[settings] settings change answered OK but stored {:?}, expected {next:?}",
                        stored.settings
                    ));
                }
            }
            (Ok(_), Err(e)) => {
                return Err(format!("[settings] an invalid change was accepted: {e}"))
            }
            (Err(EngineError::InvalidSettings(_)), Err(_)) => {}
            (Err(EngineError::InvalidSettings(e)), Ok(_)) => {
                return Err(format!("[settings] a valid change was refused: {e}"))
            }
            (Err(_), _) => {}
        }
        if stored.policy_version != version {
            if stored.policy_version != version + 1 {
                return Err(format!(
                    "[settings] policy version jumped from {version} to {}",
                    stored.policy_version
                ));
            }
            let now = self.now();
            self.oracle.accounts[a].versions.push((
                stored.policy_version,
                stored.settings.clone(),
                now,
            ));
        }
        Ok(())
    }

    // ---- content -----------------------------------------------------------------------

    fn register(
        &mut self,
        account: usize,
        artifact: &lethe::domain::Artifact,
        own_anchor: Time,
        version: i64,
        uncertain: bool,
    ) {
        if self.oracle.artifacts.contains_key(&artifact.id) {
            return;
        }
        self.oracle.add_artifact(OArtifact {
            id: artifact.id,
            kind: artifact.kind,
            account,
            transcript: artifact.transcript_id,
            own_anchor,
            created_version: version,
            requested_at: None,
            uncertain,
        });
    }

    /// Learns what a call that failed part-way left in the stores: transcripts and
    /// artifacts the oracle has not seen are registered as uncertain.
    async fn resync(&mut self, a: usize) -> Check {
        let account_id = self.oracle.accounts[a].id;
        let index = self.base.index.clone();
        let mut before = None;
        loop {
            let page = index
                .list_transcripts(
                    account_id,
                    &TranscriptQuery {
                        before_id: before,
                        limit: 200,
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| format!("list: {e}"))?;
            let Some(last) = page.last() else { break };
            before = Some(last.id);
            for t in &page {
                if self.oracle.transcript(t.id).is_none() {
                    self.oracle.add_transcript(OTranscript {
                        id: t.id,
                        account: a,
                        created_version: t.policy_version,
                        created_at: t.created_at,
                        upload: t.upload_id,
                        anchored_at: None,
                        finished_by_run: false,
                        finish_attempts: Vec::new(),
                        customer_deleted_at: None,
                    });
                }
            }
        }
        let ids: Vec<TranscriptId> = self
            .oracle
            .transcripts
            .iter()
            .filter(|t| t.account == a)
            .map(|t| t.id)
            .collect();
        for artifact in index
            .artifacts_for_transcripts(&ids)
            .await
            .map_err(|e| format!("artifacts: {e}"))?
        {
            let anchor = artifact.anchor_at.unwrap_or(artifact.created_at);
            let version = artifact.policy_version;
            self.register(a, &artifact, anchor, version, true);
        }
        let mut after = None;
        loop {
            let page = index
                .live_artifacts_for_account(account_id, after, 500)
                .await
                .map_err(|e| format!("live artifacts: {e}"))?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            for artifact in &page {
                let anchor = artifact.anchor_at.unwrap_or(artifact.created_at);
                self.register(a, artifact, anchor, artifact.policy_version, true);
            }
            if page.len() < 500 {
                break;
            }
        }
        Ok(())
    }

    async fn upload(&mut self, account: usize) -> Check {
        let Some(a) = self.account_index(account) else {
            return Ok(());
        };
        let Some(i) = self.pick() else { return Ok(()) };
        let Some(acct) = self.engine_account(a).await else {
            return Ok(());
        };
        let before = self.injected(i);
        let lethe = self.instances[i].app.engine.clone();
        match lethe.upload(&acct, body(b"SIM-AUDIO")).await {
            Ok(artifact) => {
                let now = self.now();
                self.register(a, &artifact, now, acct.policy_version, false);
            }
            Err(EngineError::ZeroDataRetention) if acct.settings.zero_data_retention => {}
            Err(e) if self.injected(i) > before => {
                let _ = e;
                self.resync(a).await?;
            }
            Err(e) => return Err(format!("[api] upload failed without a fault: {e}")),
        }
        Ok(())
    }

    async fn create_transcript(&mut self, account: usize, from_upload: bool) -> Check {
        let Some(a) = self.account_index(account) else {
            return Ok(());
        };
        let Some(i) = self.pick() else { return Ok(()) };
        let Some(acct) = self.engine_account(a).await else {
            return Ok(());
        };
        let upload = if from_upload {
            self.oracle
                .standalone
                .iter()
                .rev()
                .filter_map(|id| self.oracle.artifacts.get(id))
                .find(|x| x.account == a && x.kind == ArtifactKind::UploadedAudio)
                .map(|x| x.id)
        } else {
            None
        };
        let audio = match upload {
            Some(id) => AudioSource::Upload(id),
            None => AudioSource::Url(Content::new("https://example.com/a.wav?sig=SIM")),
        };
        let new = NewTranscript {
            audio,
            options: serde_json::json!({"speech_model": "universal"}),
            text_inputs: Some(Content::new(r#"{"prompt":"SIM-PROMPT"}"#)),
            webhook_auth: false,
        };
        let before = self.injected(i);
        let lethe = self.instances[i].app.engine.clone();
        match lethe.create_transcript(&acct, new).await {
            Ok(t) => {
                self.oracle.add_transcript(OTranscript {
                    id: t.id,
                    account: a,
                    created_version: acct.policy_version,
                    created_at: t.created_at,
                    upload: t.upload_id,
                    anchored_at: None,
                    finished_by_run: false,
                    finish_attempts: Vec::new(),
                    customer_deleted_at: None,
                });
                let now = self.now();
                for artifact in self
                    .base
                    .index
                    .artifacts_for_transcript(t.id)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    self.register(a, &artifact, now, acct.policy_version, false);
                }
            }
            Err(EngineError::ZeroDataRetention) if acct.settings.zero_data_retention => {}
            // The upload went meanwhile (deleted, or past delete_after): refused, as it must.
            Err(EngineError::UploadNotAccessible) if upload.is_some() => {}
            Err(e) if self.injected(i) > before => {
                let _ = e;
                self.resync(a).await?;
            }
            Err(e) => {
                return Err(format!(
                    "[api] create transcript failed without a fault: {e}"
                ))
            }
        }
        Ok(())
    }

    fn transcript_index(&self, n: usize) -> Option<usize> {
        (!self.oracle.transcripts.is_empty()).then(|| n % self.oracle.transcripts.len())
    }

    async fn process(&mut self, transcript: usize) -> Check {
        let Some(t) = self.transcript_index(transcript) else {
            return Ok(());
        };
        let Some(i) = self.pick() else { return Ok(()) };
        let (id, a) = (
            self.oracle.transcripts[t].id,
            self.oracle.transcripts[t].account,
        );
        let Some(acct) = self.engine_account(a).await else {
            return Ok(());
        };
        let lethe = self.instances[i].app.engine.clone();
        let before = self.injected(i);
        if lethe.mark_processing(id).await.is_err() {
            if self.injected(i) > before {
                self.resync(a).await?;
            }
            return Ok(());
        }
        match lethe
            .put_intermediate(id, "chunk-0", body(b"SIM-INTERMEDIATE"))
            .await
        {
            Ok(artifact) => {
                let now = self.now();
                self.register(a, &artifact, now, acct.policy_version, false);
            }
            Err(_) if self.injected(i) > before => self.resync(a).await?,
            Err(EngineError::ZeroDataRetention | EngineError::AlreadyFinished { .. }) => {}
            Err(e) => return Err(format!("[api] intermediate failed without a fault: {e}")),
        }
        Ok(())
    }

    async fn finish(&mut self, transcript: usize, racers: usize, error: bool) -> Check {
        let Some(t) = self.transcript_index(transcript) else {
            return Ok(());
        };
        let (id, a) = (
            self.oracle.transcripts[t].id,
            self.oracle.transcripts[t].account,
        );
        let mut calls = Vec::new();
        let mut used = Vec::new();
        for r in 0..racers {
            let Some(i) = self.pick() else { break };
            used.push((i, self.injected(i)));
            let lethe = self.instances[i].app.engine.clone();
            let fail = error || r % 3 == 2;
            calls.push(async move {
                if fail {
                    lethe.fail(id, "SIM-ERROR").await
                } else {
                    lethe
                        .complete(id, Content::new(r#"{"text":"SIM-TEXT"}"#), Some(3.0))
                        .await
                }
            });
        }
        if calls.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let finals_before: HashSet<ArtifactId> = self
            .oracle
            .artifacts
            .values()
            .filter(|x| x.transcript == Some(id) && x.kind == ArtifactKind::FinalTranscript)
            .map(|x| x.id)
            .collect();
        let results = futures::future::join_all(calls).await;
        let faulted = used.iter().any(|(i, n)| self.injected(*i) > *n);
        let winners = results.iter().filter(|r| r.is_ok()).count();
        if winners > 1 {
            return Err(format!(
                "[race] {winners} racing calls all finished transcript {id}"
            ));
        }
        if winners == 1 {
            let ot = &mut self.oracle.transcripts[t];
            if ot.anchored_at.is_some() {
                return Err(format!("[race] transcript {id} finished twice"));
            }
            ot.anchored_at = Some(now);
            ot.finished_by_run = true;
        }
        if faulted {
            self.oracle.transcripts[t].finish_attempts.push(now);
            self.resync(a).await?;
        } else {
            let version = self.oracle.accounts[a].current().0;
            for artifact in self
                .base
                .index
                .artifacts_for_transcript(id)
                .await
                .map_err(|e| e.to_string())?
            {
                self.register(a, &artifact, now, version, false);
            }
            let finals = self
                .base
                .index
                .artifacts_for_transcript(id)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|x| {
                    x.kind == ArtifactKind::FinalTranscript && !finals_before.contains(&x.id)
                })
                .count();
            if finals > 1 {
                return Err(format!(
                    "[race] transcript {id} has {finals} final transcripts after a race"
                ));
            }
        }
        Ok(())
    }

    async fn speech(&mut self, transcript: usize) -> Check {
        let Some(t) = self.transcript_index(transcript) else {
            return Ok(());
        };
        let Some(i) = self.pick() else { return Ok(()) };
        let (id, a) = (
            self.oracle.transcripts[t].id,
            self.oracle.transcripts[t].account,
        );
        let version = self.oracle.accounts[a].current().0;
        let lethe = self.instances[i].app.engine.clone();
        let before = self.injected(i);
        match lethe
            .add_speech_understanding(id, Content::new(r#"{"translation":"SIM-SU"}"#))
            .await
        {
            Ok(artifact) => {
                let now = self.now();
                self.register(a, &artifact, now, version, false);
            }
            Err(_) if self.injected(i) > before => self.resync(a).await?,
            Err(_) => {}
        }
        Ok(())
    }

    async fn customer_delete(&mut self, transcript: usize) -> Check {
        let Some(t) = self.transcript_index(transcript) else {
            return Ok(());
        };
        let Some(i) = self.pick() else { return Ok(()) };
        let (id, a) = (
            self.oracle.transcripts[t].id,
            self.oracle.transcripts[t].account,
        );
        let Some(acct) = self.engine_account(a).await else {
            return Ok(());
        };
        let lethe = self.instances[i].app.engine.clone();
        let before = self.injected(i);
        let now = self.now();
        match lethe.delete_transcript(&acct, id).await {
            Ok(_) => {
                let upload = self.oracle.transcripts[t].upload;
                self.oracle.transcripts[t]
                    .customer_deleted_at
                    .get_or_insert(now);
                for x in self.oracle.artifacts.values_mut() {
                    if x.transcript == Some(id) || Some(x.id) == upload {
                        x.requested_at.get_or_insert(now);
                    }
                }
                // Deleted before the answer, unless another pass held it at that moment.
                for x in self
                    .base
                    .index
                    .artifacts_for_transcript(id)
                    .await
                    .map_err(|e| e.to_string())?
                {
                    if x.state == ArtifactState::Live {
                        return Err(format!(
                            "[api] customer deletion of {id} answered while its {} {} is live",
                            x.kind, x.id
                        ));
                    }
                }
            }
            Err(EngineError::StillProcessing) => {}
            Err(_) if self.injected(i) > before => {
                // What the request recorded before it failed stands: the transcript reads
                // as deleted and what was requested is due now.
                self.resync(a).await?;
                let stored = self
                    .base
                    .index
                    .transcript(id)
                    .await
                    .map_err(|e| e.to_string())?;
                if stored.is_some_and(|t| {
                    t.deletion
                        .is_some_and(|d| d.reason == lethe::domain::DeletionReason::CustomerRequest)
                }) {
                    self.oracle.transcripts[t]
                        .customer_deleted_at
                        .get_or_insert(now);
                }
                let upload = self.oracle.transcripts[t].upload;
                let mut ids: Vec<ArtifactId> = self
                    .oracle
                    .artifacts
                    .values()
                    .filter(|x| x.transcript == Some(id))
                    .map(|x| x.id)
                    .collect();
                ids.extend(upload);
                for x in ids {
                    let requested = self
                        .base
                        .index
                        .artifact(x)
                        .await
                        .map_err(|e| e.to_string())?
                        .is_some_and(|s| {
                            s.pending_reason == Some(lethe::domain::DeletionReason::CustomerRequest)
                        });
                    if requested {
                        if let Some(o) = self.oracle.artifacts.get_mut(&x) {
                            o.requested_at.get_or_insert(now);
                        }
                    }
                }
            }
            Err(e) => {
                return Err(format!(
                    "[api] customer deletion failed without a fault: {e}"
                ))
            }
        }
        Ok(())
    }

    async fn gateway(&mut self, account: usize, provider: &str, on_transcript: bool) -> Check {
        let Some(a) = self.account_index(account) else {
            return Ok(());
        };
        let Some(i) = self.pick() else { return Ok(()) };
        let Some(acct) = self.engine_account(a).await else {
            return Ok(());
        };
        let transcript_id = if on_transcript {
            self.oracle
                .transcripts
                .iter()
                .rev()
                .find(|t| t.account == a)
                .map(|t| t.id)
        } else {
            None
        };
        let now = self.now();
        let request = LlmGatewayRequest {
            account_id: acct.id,
            provider: provider.to_owned(),
            model: "sim-model".into(),
            content: Some(Content::new(r#"{"input":"SIM-LLM"}"#)),
            transcript_id,
            started_at: now - Duration::seconds(2),
            ended_at: now,
        };
        let lethe = self.instances[i].app.engine.clone();
        let before = self.injected(i);
        match lethe.record_llm_request(request).await {
            Ok(recorded) => {
                if let Some(artifact) = recorded.artifact {
                    self.register(a, &artifact, now, acct.policy_version, false);
                }
            }
            Err(_) if self.injected(i) > before => self.resync(a).await?,
            Err(_) => {}
        }
        Ok(())
    }

    async fn streaming(&mut self, account: usize, ended_minutes_ago: i64) -> Check {
        let Some(a) = self.account_index(account) else {
            return Ok(());
        };
        let Some(i) = self.pick() else { return Ok(()) };
        let Some(acct) = self.engine_account(a).await else {
            return Ok(());
        };
        let now = self.now();
        let ended = now - Duration::minutes(ended_minutes_ago);
        let session = StreamingSession {
            account_id: acct.id,
            model: "sim-stream".into(),
            started_at: ended - Duration::minutes(3),
            ended_at: ended,
            content: Some(Content::new(r#"{"transcript":"SIM-STREAM"}"#)),
        };
        let lethe = self.instances[i].app.engine.clone();
        let before = self.injected(i);
        match lethe.record_streaming_session(session).await {
            Ok(recorded) => {
                if let Some(artifact) = recorded.artifact {
                    self.register(a, &artifact, ended, acct.policy_version, false);
                    let window = self
                        .oracle
                        .policy_window(&self.oracle.artifacts[&artifact.id]);
                    if window.after.is_some_and(|after| after <= now) {
                        return Err(format!(
                            "[stored] a streaming session past its deadline was stored ({})",
                            artifact.id
                        ));
                    }
                }
            }
            Err(_) if self.injected(i) > before => self.resync(a).await?,
            Err(_) => {}
        }
        Ok(())
    }

    async fn delete_standalone(&mut self, which: usize) -> Check {
        let candidates: Vec<ArtifactId> = self
            .oracle
            .standalone
            .iter()
            .copied()
            .filter(|id| {
                matches!(
                    self.oracle.artifacts[id].kind,
                    ArtifactKind::LlmGatewayIo | ArtifactKind::StreamingSession
                )
            })
            .collect();
        if candidates.is_empty() {
            return Ok(());
        }
        let id = candidates[which % candidates.len()];
        let Some(i) = self.pick() else { return Ok(()) };
        let (a, kind) = {
            let x = &self.oracle.artifacts[&id];
            (x.account, x.kind)
        };
        let Some(acct) = self.engine_account(a).await else {
            return Ok(());
        };
        let lethe = self.instances[i].app.engine.clone();
        let before = self.injected(i);
        let now = self.now();
        match lethe.delete_standalone(&acct, kind, id).await {
            Ok(_) => {
                if let Some(x) = self.oracle.artifacts.get_mut(&id) {
                    x.requested_at.get_or_insert(now);
                }
            }
            Err(_) if self.injected(i) > before => {
                // The request may have been recorded before the failure: it is then due.
                let stored = self
                    .base
                    .index
                    .artifact(id)
                    .await
                    .map_err(|e| e.to_string())?;
                if stored.is_some_and(|s| s.pending_reason.is_some()) {
                    if let Some(x) = self.oracle.artifacts.get_mut(&id) {
                        x.requested_at.get_or_insert(now);
                    }
                }
            }
            Err(e) => {
                return Err(format!(
                    "[api] standalone deletion failed without a fault: {e}"
                ))
            }
        }
        Ok(())
    }

    async fn sweep(&mut self, instances: usize) -> Check {
        let up: Vec<usize> = (0..self.instances.len())
            .filter(|i| self.instances[*i].up)
            .take(instances)
            .collect();
        if up.is_empty() {
            return Ok(());
        }
        let now = self.now();
        let before: Vec<usize> = up.iter().map(|i| self.injected(*i)).collect();
        let passes = up.iter().map(|i| {
            let sweeper = self.instances[*i].app.sweeper.clone();
            async move { sweeper.run_once(now).await }
        });
        let results = futures::future::join_all(passes).await;
        self.stats.passes += results.len() as u64;
        // Clean: every pass of the step ended with no fault (a faulty one running beside
        // it may hold claims the clean ones had to leave alone).
        let mut clean = true;
        for ((i, n), result) in up.iter().zip(before).zip(&results) {
            if result.is_err() || self.injected(*i) != n || self.instances[*i].faults.has_crashed()
            {
                clean = false;
            }
        }
        if clean {
            self.stats.clean_passes += 1;
            self.last_clean_pass = Some(now);
        }
        // What the sweeper errored past max_processing is anchored now.
        self.learn_anchors().await?;
        Ok(())
    }

    async fn reconcile(&mut self, repair: bool) -> Check {
        let Some(i) = self.pick() else { return Ok(()) };
        let sweeper = self.instances[i].app.sweeper.clone();
        let options = ReconcileOptions {
            repair,
            grace: Duration::hours(1),
        };
        let _ = sweeper.reconcile(self.now(), options, &|_, _| {}).await;
        Ok(())
    }

    /// Learns when transcripts the run did not finish became terminal (the sweeper moved
    /// them to error past max_processing), checking that it was not early.
    async fn learn_anchors(&mut self) -> Check {
        let pending: Vec<usize> = (0..self.oracle.transcripts.len())
            .filter(|t| self.oracle.transcripts[*t].anchored_at.is_none())
            .collect();
        let ids: Vec<TranscriptId> = pending
            .iter()
            .map(|t| self.oracle.transcripts[*t].id)
            .collect();
        let stored: HashMap<TranscriptId, lethe::domain::Transcript> = self
            .base
            .index
            .transcripts(&ids)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|t| (t.id, t))
            .collect();
        for t in pending {
            let ot = &self.oracle.transcripts[t];
            let Some(s) = stored.get(&ot.id) else {
                continue;
            };
            if let (true, Some(at)) = (s.status.is_terminal(), s.completed_at) {
                if !ot.finished_by_run
                    && !ot.finish_attempts.contains(&at)
                    && at < ot.created_at + self.config.max_processing
                {
                    return Err(format!(
                        "[early] transcript {} moved to error at {at}, before max_processing",
                        ot.id
                    ));
                }
                self.oracle.transcripts[t].anchored_at = Some(at);
            }
        }
        Ok(())
    }

    // ---- the oracle's checks -------------------------------------------------------------

    /// Every invariant, against the stores as they are now.
    pub async fn check(&mut self) -> Check {
        self.stats.checks += 1;
        self.learn_anchors().await?;
        let now = self.now();
        let lease = Duration::minutes(LEASE_MINUTES);
        let index = self.base.index.clone();

        // The engine's view of every artifact the run made.
        let transcript_ids: Vec<TranscriptId> =
            self.oracle.transcripts.iter().map(|t| t.id).collect();
        let mut stored: HashMap<ArtifactId, lethe::domain::Artifact> = index
            .artifacts_for_transcripts(&transcript_ids)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|a| (a.id, a))
            .collect();
        for id in &self.oracle.standalone {
            if let Some(a) = index.artifact(*id).await.map_err(|e| e.to_string())? {
                stored.insert(a.id, a);
            }
        }
        let transcripts: HashMap<TranscriptId, lethe::domain::Transcript> = index
            .transcripts(&transcript_ids)
            .await
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(|t| (t.id, t))
            .collect();
        // Anything in the stores the oracle has not seen was made by a call it did not see
        // succeed: register it (uncertain) by its transcript's account.
        for a in stored.values() {
            if !self.oracle.artifacts.contains_key(&a.id) {
                let account = self
                    .oracle
                    .account_of(a.account_id)
                    .ok_or_else(|| format!("artifact {} of an unknown account", a.id))?;
                let anchor = a.anchor_at.unwrap_or(a.created_at);
                self.register(account, &a.clone(), anchor, a.policy_version, true);
            }
        }

        // When each transcript's winning final transcript was deleted.
        let final_deleted: HashMap<TranscriptId, Time> = stored
            .values()
            .filter(|a| a.kind == ArtifactKind::FinalTranscript)
            .filter(|a| {
                a.transcript_id
                    .and_then(|t| transcripts.get(&t))
                    .is_some_and(|t| t.final_artifact_id.is_none_or(|f| f == a.id))
            })
            .filter_map(|a| Some((a.transcript_id?, a.deleted_at?)))
            .collect();

        let mut deleted = 0u64;
        let mut expected_overdue: HashSet<ArtifactId> = HashSet::new();
        let mut unsettled_artifacts: HashSet<ArtifactId> = HashSet::new();
        for o in self.oracle.artifacts.values() {
            let Some(a) = stored.get(&o.id) else {
                // Gone without a trace: only an unconfirmed write a crash abandoned may be.
                if o.uncertain {
                    continue;
                }
                return Err(format!(
                    "[index] {} {} vanished from the index",
                    o.kind, o.id
                ));
            };
            let final_at = o.transcript.and_then(|t| final_deleted.get(&t).copied());
            // A result no transcript names (an attempt that crashed before it won, or a
            // loser that could not clean up) is nobody's content: it may go at any time and
            // must go by the deadline the engine gave it.
            let garbage = o.kind == ArtifactKind::FinalTranscript
                && o.transcript
                    .and_then(|t| transcripts.get(&t))
                    .is_some_and(|t| t.final_artifact_id != Some(o.id));
            if garbage {
                if a.state == ArtifactState::Deleted {
                    deleted += 1;
                } else if a.delete_by.is_some_and(|by| by < now) {
                    expected_overdue.insert(o.id);
                }
                continue;
            }
            let window = self.oracle.policy_window(o);
            // 1. Never early.
            if a.state == ArtifactState::Deleted {
                deleted += 1;
                let at = a
                    .deleted_at
                    .ok_or("a deleted artifact without deleted_at")?;
                let allowed = self.oracle.allowed_from(o, final_at);
                if allowed.is_none_or(|from| at < from) {
                    return Err(format!(
                        "[early] {} {} deleted early at {at}; allowed from {allowed:?} (window {window:?}, requested {:?}); stored {a:?}; oracle {o:?}; versions {:?}",
                        o.kind, o.id, o.requested_at, self.oracle.accounts[o.account].versions
                    ));
                }
                // Exactly one tombstone, saying what happened.
                let tomb = self
                    .base
                    .audit
                    .tombstone(o.id)
                    .await
                    .map_err(|e| e.to_string())?
                    .ok_or_else(|| {
                        format!(
                            "[tombstone] {} {} deleted without a tombstone",
                            o.kind, o.id
                        )
                    })?;
                if tomb.deleted_at != at || tomb.kind != o.kind {
                    return Err(format!(
                        "[tombstone] {} {}: tombstone {tomb:?} disagrees",
                        o.kind, o.id
                    ));
                }
            } else {
                // 2. Never missed: a pass that ran with nothing in its way, a lease after
                //    the artifact became due, deleted it.
                let required = self.oracle.required_from(o, final_at);
                // A claim a failed pass still held when the clean pass ran excuses it.
                let held = a
                    .claimed_until
                    .is_some_and(|until| self.last_clean_pass.is_some_and(|pass| until > pass));
                if let (Some(from), Some(pass), false) = (required, self.last_clean_pass, held) {
                    if from + lease <= pass {
                        let ot = o.transcript.and_then(|t| self.oracle.transcript(t));
                        let st = o.transcript.and_then(|t| transcripts.get(&t));
                        eprintln!(
                            "oracle transcript: {ot:?}\nstored transcript: {st:?}\nstored artifact: {a:?}\noracle artifact: {o:?}"
                        );
                        return Err(format!(
                            "[missed] {} {} ({:?}) still {:?} after a clean pass at {pass}; due from {from} (window {window:?}, requested {:?}, account versions {:?})",
                            o.kind, o.id, a.schedule, a.state, o.requested_at,
                            self.oracle.accounts[o.account].versions.iter().map(|(v, s, at)| (v, s.transcript_ttl.map(|d| d.num_hours()), s.baa, at)).collect::<Vec<_>>()
                        ));
                    }
                }
                // Artifacts of a transcript a crash left unsettled carry no deadline of their
                // own until the next pass settles it: their final transcript stands for them.
                let unsettled = o
                    .transcript
                    .and_then(|t| transcripts.get(&t))
                    .is_some_and(|t| !t.settled)
                    && o.kind != ArtifactKind::FinalTranscript;
                // Being deleted right now (a cascade or request under a claim): in flight,
                // not missed; the claim's lease bounds it.
                let in_flight = a.state == ArtifactState::Deleting && a.pending_reason.is_some();
                if unsettled || in_flight {
                    unsettled_artifacts.insert(o.id);
                } else if window.by.is_some_and(|by| by < now) {
                    expected_overdue.insert(o.id);
                }
            }
        }

        // 3. Never served from delete_after on; served before it.
        for t in &self.oracle.transcripts {
            let Some(s) = transcripts.get(&t.id) else {
                continue;
            };
            let account = self
                .observer
                .account(self.oracle.accounts[t.account].id)
                .await
                .map_err(|e| e.to_string())?;
            let view = self
                .observer
                .transcript_content(&account, t.id)
                .await
                .map_err(|e| format!("reading {}: {e}", t.id))?;
            let window = self.oracle.transcript_window(t);
            let expired = window.after.is_some_and(|after| after <= now);
            if (expired || t.customer_deleted_at.is_some()) && view.redacted.is_none() {
                return Err(format!(
                    "[served] transcript {} served past its deletion time (window {window:?})",
                    t.id
                ));
            }
            if !expired
                && t.customer_deleted_at.is_none()
                && s.deletion.is_none()
                && view.redacted.is_some()
            {
                return Err(format!(
                    "[served] transcript {} redacted before its deletion time (window {window:?})",
                    t.id
                ));
            }
        }
        for id in &self.oracle.standalone {
            let o = &self.oracle.artifacts[id];
            if o.kind != ArtifactKind::UploadedAudio || o.uncertain {
                continue;
            }
            let window = self.oracle.policy_window(o);
            let gone = window.after.is_some_and(|after| after <= now) || o.requested_at.is_some();
            match self.observer.read_upload(o.id).await {
                Ok(UploadRead::Live(_)) if gone => {
                    return Err(format!("[served] upload {} served past its deletion time", o.id))
                }
                Ok(UploadRead::Deleted) if !gone => {
                    return Err(format!(
                        "[served] upload {} not served before its deletion time (window {window:?}); stored {:?}; oracle {o:?}; versions {:?}",
                        o.id,
                        stored.get(&o.id),
                        self.oracle.accounts[o.account].versions
                    ))
                }
                Ok(_) => {}
                Err(e) => return Err(format!("reading upload {}: {e}", o.id)),
            }
        }

        // 4. The overdue listing and the deletion counters equal the oracle's, once no
        //    retention change is still on its way to the stored schedules.
        let jobs = self
            .base
            .accounts
            .accounts_with_retention_jobs(1)
            .await
            .map_err(|e| e.to_string())?;
        if jobs.is_empty() {
            let listed: HashSet<ArtifactId> = self
                .observer
                .overdue(100_000)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|a| a.id)
                .filter(|id| {
                    self.oracle.artifacts.contains_key(id) && !unsettled_artifacts.contains(id)
                })
                .collect();
            if listed != expected_overdue {
                for id in listed.symmetric_difference(&expected_overdue) {
                    let o = &self.oracle.artifacts[id];
                    eprintln!(
                        "overdue mismatch: stored {:?}\noracle {o:?} window {:?} transcript {:?}",
                        stored.get(id),
                        self.oracle.policy_window(o),
                        o.transcript.and_then(|t| self.oracle.transcript(t))
                    );
                }
                return Err(format!(
                    "[overdue] overdue listing {:?} is not the oracle's {:?}",
                    listed.difference(&expected_overdue).collect::<Vec<_>>(),
                    expected_overdue.difference(&listed).collect::<Vec<_>>()
                ));
            }
        }
        let counted: u64 = self
            .instances
            .iter()
            .map(|i| i.app.engine.metrics().clone())
            .chain(self.retired.iter().cloned())
            .map(|m| deletions_counted(&m.encode()))
            .sum();
        if counted != deleted {
            return Err(format!(
                "[counters] lethe_deletions_total says {counted}; {deleted} artifacts are deleted"
            ));
        }
        self.stats.deletions = deleted;

        // 5. The deletion log: every deleted artifact's tombstone is exactly one leaf, with
        //    the tombstone's hash, and the log holds nothing but tombstones.
        self.check_log(&stored).await?;

        // 6. After a clean pass: no content without a live artifact, no live artifact
        //    without its content, data keys exactly for scopes with something live.
        if self.last_clean_pass == Some(now) {
            self.check_content(&stored).await?;
        }
        Ok(())
    }

    async fn check_log(&self, stored: &HashMap<ArtifactId, lethe::domain::Artifact>) -> Check {
        let audit = &self.base.audit;
        let deleted: Vec<ArtifactId> = stored
            .values()
            .filter(|a| a.state == ArtifactState::Deleted)
            .map(|a| a.id)
            .collect();
        let logged = audit
            .logged_tombstones(&deleted)
            .await
            .map_err(|e| e.to_string())?;
        let leaves = audit
            .log_leaves(0, u32::MAX)
            .await
            .map_err(|e| e.to_string())?;
        let mut seen = HashSet::new();
        for (index, tomb) in &logged {
            if !seen.insert(tomb.artifact_id) {
                return Err(format!("[log] {} is in the log twice", tomb.artifact_id));
            }
            let leaf = leaves.get(*index as usize).ok_or_else(|| {
                format!(
                    "[log] leaf {index} of {} is past the log's end",
                    tomb.artifact_id
                )
            })?;
            if *leaf != lethe::receipts::tombstone_leaf_hash(tomb) {
                return Err(format!(
                    "[log] leaf {index} does not hold the tombstone of {}",
                    tomb.artifact_id
                ));
            }
        }
        if let Some(missing) = deleted.iter().find(|id| !seen.contains(id)) {
            return Err(format!("[log] deleted artifact {missing} has no leaf"));
        }
        // Tombstones of artifacts outside `stored` (uncertain writes) are leaves too.
        let mut tombstones = 0usize;
        for account in &self.oracle.accounts {
            tombstones += audit
                .tombstones(account.id, None, u32::MAX)
                .await
                .map_err(|e| e.to_string())?
                .len();
        }
        if leaves.len() != tombstones {
            return Err(format!(
                "[log] {} leaves for {tombstones} tombstones",
                leaves.len()
            ));
        }
        Ok(())
    }

    async fn check_content(&self, stored: &HashMap<ArtifactId, lethe::domain::Artifact>) -> Check {
        let content = &self.base.content;
        let live_keys: HashSet<&str> = stored
            .values()
            .filter(|a| a.state != ArtifactState::Deleted)
            .map(|a| a.content_key.as_str())
            .collect();
        let uncertain_keys: HashSet<&str> = stored
            .values()
            .filter(|a| {
                self.oracle
                    .artifacts
                    .get(&a.id)
                    .is_some_and(|o| o.uncertain)
            })
            .map(|a| a.content_key.as_str())
            .collect();
        for account in &self.oracle.accounts {
            let objects = content
                .list(&format!("{}/", account.id), None, 100_000)
                .await
                .map_err(|e| e.to_string())?;
            for object in objects {
                if !live_keys.contains(object.key.as_str())
                    && !uncertain_keys.contains(object.key.as_str())
                {
                    return Err(format!(
                        "[content] content object {} has no live artifact",
                        object.key
                    ));
                }
            }
        }
        for a in stored.values() {
            let o = &self.oracle.artifacts[&a.id];
            if a.state == ArtifactState::Live && a.pending_reason.is_none() && !o.uncertain {
                let present = content
                    .get(&a.content_key)
                    .await
                    .map_err(|e| format!("content of {}: {e}", a.id))?
                    .is_some();
                if !present {
                    return Err(format!("[content] live {} {} has no content", a.kind, a.id));
                }
            }
        }
        let scopes: HashSet<&str> = stored
            .values()
            .filter(|a| a.state != ArtifactState::Deleted)
            .map(|a| lethe::domain::content_scope(&a.content_key))
            .collect();
        let uncertain_scopes: HashSet<&str> = uncertain_keys
            .iter()
            .map(|k| lethe::domain::content_scope(k))
            .collect();
        for scope in content
            .scopes_with_keys(None, 100_000)
            .await
            .map_err(|e| e.to_string())?
        {
            if !scopes.contains(scope.as_str()) && !uncertain_scopes.contains(scope.as_str()) {
                let inside: Vec<_> = stored
                    .values()
                    .filter(|a| lethe::domain::content_scope(&a.content_key) == scope)
                    .map(|a| (a.kind, a.state, a.deletion_reason, a.deleted_at))
                    .collect();
                return Err(format!(
                    "[content] data key of {scope} outlived everything in it: {inside:?}"
                ));
            }
        }
        Ok(())
    }
}

fn deletions_counted(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("lethe_deletions_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}
