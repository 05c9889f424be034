//! `lethe provision`: the table with its indexes, the TTL safety net, the due-index
//! watermark and the due-day directory, idempotently; an older table gets the indexes it
//! lacks and a directory built from its due index.

use super::*;

pub(super) fn string_attribute(name: &str) -> Result<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(build_error)
}

pub(super) fn key_schema(hash: &str, range: &str) -> Result<Vec<KeySchemaElement>> {
    Ok(vec![
        KeySchemaElement::builder()
            .attribute_name(hash)
            .key_type(KeyType::Hash)
            .build()
            .map_err(build_error)?,
        KeySchemaElement::builder()
            .attribute_name(range)
            .key_type(KeyType::Range)
            .build()
            .map_err(build_error)?,
    ])
}

pub(super) fn project_all() -> Projection {
    Projection::builder()
        .projection_type(ProjectionType::All)
        .build()
}

impl DynamoIndex {
    /// Creates the table with its indexes and enables the TTL safety net, idempotently. On
    /// a table made by an earlier version it adds the indexes it lacks, one at a time.
    pub async fn provision(&self, now: DateTime<Utc>) -> Result<()> {
        let exists = match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => true,
            Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => false,
            Err(e) => return Err(sdk_error(e)),
        };
        if !exists {
            let mut attributes = vec![string_attribute("pk")?, string_attribute("sk")?];
            let mut indexes = Vec::new();
            for (name, hash, range) in INDEXES {
                attributes.push(string_attribute(hash)?);
                attributes.push(string_attribute(range)?);
                indexes.push(
                    GlobalSecondaryIndex::builder()
                        .index_name(*name)
                        .set_key_schema(Some(key_schema(hash, range)?))
                        .projection(project_all())
                        .build()
                        .map_err(build_error)?,
                );
            }
            let created = self
                .client
                .create_table()
                .table_name(&self.table)
                .billing_mode(BillingMode::PayPerRequest)
                .set_attribute_definitions(Some(attributes))
                .set_key_schema(Some(key_schema("pk", "sk")?))
                .set_global_secondary_indexes(Some(indexes))
                .send()
                .await;
            match created {
                Ok(_) => {}
                Err(SdkError::ServiceError(e)) if e.err().is_resource_in_use_exception() => {}
                Err(e) => return Err(sdk_error(e)),
            }
        }
        let mut present = self
            .wait_until_active(std::time::Duration::from_secs(120))
            .await?;
        for (name, hash, range) in INDEXES {
            if present.iter().any(|p| p == name) {
                continue;
            }
            tracing::info!(table = %self.table, index = name, "adding a missing index; DynamoDB backfills it from existing items, which can take minutes on a large table");
            let create = aws_sdk_dynamodb::types::CreateGlobalSecondaryIndexAction::builder()
                .index_name(*name)
                .set_key_schema(Some(key_schema(hash, range)?))
                .projection(project_all())
                .build()
                .map_err(build_error)?;
            self.client
                .update_table()
                .table_name(&self.table)
                .set_attribute_definitions(Some(vec![
                    string_attribute(hash)?,
                    string_attribute(range)?,
                ]))
                .global_secondary_index_updates(
                    aws_sdk_dynamodb::types::GlobalSecondaryIndexUpdate::builder()
                        .create(create)
                        .build(),
                )
                .send()
                .await
                .map_err(sdk_error)?;
            // Backfilling a large table can take long; a rerun resumes the wait.
            present = self
                .wait_until_active(std::time::Duration::from_secs(3600))
                .await?;
        }
        let ttl = self
            .client
            .describe_time_to_live()
            .table_name(&self.table)
            .send()
            .await
            .map_err(sdk_error)?;
        let enabled = ttl
            .time_to_live_description()
            .and_then(|d| d.time_to_live_status())
            .is_some_and(|s| {
                matches!(
                    s,
                    aws_sdk_dynamodb::types::TimeToLiveStatus::Enabled
                        | aws_sdk_dynamodb::types::TimeToLiveStatus::Enabling
                )
            });
        // The due-index watermark starts today: every entry is written at or after it.
        self.create_due_low(day(now)).await?;
        self.complete_due_days().await?;
        if !enabled {
            let spec = TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL_ATTRIBUTE)
                .build()
                .map_err(build_error)?;
            self.client
                .update_time_to_live()
                .table_name(&self.table)
                .time_to_live_specification(spec)
                .send()
                .await
                .map_err(sdk_error)?;
        }
        Ok(())
    }

    /// Waits until the table and every index are active, at most `max`; returns the names
    /// of its indexes.
    pub(super) async fn wait_until_active(&self, max: std::time::Duration) -> Result<Vec<String>> {
        use aws_sdk_dynamodb::types::{IndexStatus, TableStatus};
        let started = std::time::Instant::now();
        let mut reported = started;
        while started.elapsed() < max {
            let described = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(sdk_error)?;
            let Some(table) = described.table() else {
                return Err(corrupt(format!("table {} has no description", self.table)));
            };
            let indexes = table.global_secondary_indexes();
            let ready = table.table_status() == Some(&TableStatus::Active)
                && indexes
                    .iter()
                    .all(|i| i.index_status().is_none_or(|s| *s == IndexStatus::Active));
            if ready {
                return Ok(indexes
                    .iter()
                    .filter_map(|i| i.index_name().map(str::to_owned))
                    .collect());
            }
            if reported.elapsed() >= std::time::Duration::from_secs(30) {
                tracing::info!(table = %self.table, waited_s = started.elapsed().as_secs(), "waiting for the table and its indexes to become active");
                reported = std::time::Instant::now();
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        Err(corrupt(format!(
            "table {} did not become active within {} s; run provision again to keep waiting",
            self.table,
            max.as_secs()
        )))
    }
}
