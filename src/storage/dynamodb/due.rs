//! The due index: day buckets × write shards, read from a watermark (the oldest day that
//! may still hold an entry) that only moves over days found empty and stays a skew margin
//! behind the clock, so no bucket is ever skipped.

use super::*;

/// How far back a missing due-index watermark starts (tables provisioned before it
/// existed): farther than any entry can lie, since the TTL safety net removes items 30
/// days past their deadline.
pub(super) const WATERMARK_BACKFILL: Duration = Duration::days(40);

/// How far behind this instance's clock the watermark always stays (clock skew between
/// instances).
pub(super) const WATERMARK_SKEW: Duration = Duration::minutes(10);

pub(super) fn not_claimed_by_others(now: DateTime<Utc>) -> impl Fn(&Item) -> bool + Copy {
    let now = micros(now);
    move |item: &Item| match opt_n(item, "claimed_until") {
        Ok(Some(until)) => until <= now,
        _ => true,
    }
}

impl DynamoIndex {
    /// The oldest day bucket that may hold due entries. `lethe provision` creates the
    /// watermark; a table without one (provisioned by an older version) gets one
    /// `WATERMARK_BACKFILL` days back, so the first passes read every bucket an entry can
    /// still be in and then move it forward over the empty days.
    pub(super) async fn due_low(&self, now: DateTime<Utc>) -> Result<NaiveDate> {
        let stored = self
            .get(meta_key())
            .await?
            .and_then(|item| opt_s(&item, "day"))
            .and_then(|d| d.parse::<NaiveDate>().ok());
        let low = match stored {
            Some(low) => low,
            None => {
                let start = day(now - WATERMARK_BACKFILL);
                tracing::warn!(table = %self.table, from = %start, "the due-index watermark is missing; reading the due index from {start} on (run `lethe provision` to create it)");
                self.create_due_low(start).await?
            }
        };
        Ok(low.min(day(now)))
    }

    /// Creates the watermark at `at` unless one exists; returns the one in force.
    pub(super) async fn create_due_low(&self, at: NaiveDate) -> Result<NaiveDate> {
        let change = Change {
            key: meta_key(),
            update: "SET #d = if_not_exists(#d, :d)".into(),
            condition: None,
            names: HashMap::from([("#d".into(), "day".into())]),
            values: HashMap::from([(":d".into(), s(at.to_string()))]),
        };
        let item = self.update(&change).await?;
        Ok(item
            .and_then(|i| opt_s(&i, "day"))
            .and_then(|d| d.parse().ok())
            .unwrap_or(at))
    }

    /// Moves the watermark from `from` to `to` if no one moved it meanwhile.
    pub(super) async fn advance_due_low(&self, from: NaiveDate, to: NaiveDate) -> Result<()> {
        let change = Change {
            key: meta_key(),
            update: "SET #d = :to".into(),
            condition: Some("attribute_not_exists(#d) OR #d = :from".into()),
            names: HashMap::from([("#d".into(), "day".into())]),
            values: HashMap::from([
                (":to".into(), s(to.to_string())),
                (":from".into(), s(from.to_string())),
            ]),
        };
        self.update(&change).await?;
        Ok(())
    }

    /// Adds `bucket` to the due-day directory unless this instance already has: called
    /// before an entry is written into that bucket, so a pass that reads the directory
    /// after the entry exists reads the bucket.
    pub(super) async fn register_due_day(&self, bucket: NaiveDate) -> Result<()> {
        let known = self
            .registered_days
            .lock()
            .expect("registered days")
            .contains(&bucket);
        if known {
            return Ok(());
        }
        let change = Change {
            key: due_days_key(),
            update: "ADD days :d".into(),
            condition: None,
            names: HashMap::new(),
            values: HashMap::from([(":d".into(), AttributeValue::Ss(vec![bucket.to_string()]))]),
        };
        self.update(&change).await?;
        let mut known = self.registered_days.lock().expect("registered days");
        if known.len() > 4096 {
            known.clear();
        }
        known.insert(bucket);
        Ok(())
    }

    /// The day buckets from `low` to `high` that may hold entries, earliest first: the
    /// directory's days once it is complete, every calendar day before that.
    pub(super) async fn due_days(&self, low: NaiveDate, high: NaiveDate) -> Result<Vec<NaiveDate>> {
        let directory = self.get(due_days_key()).await?;
        let complete = directory
            .as_ref()
            .is_some_and(|d| matches!(d.get("complete"), Some(AttributeValue::Bool(true))));
        if !complete {
            return Ok(low.iter_days().take_while(|d| *d <= high).collect());
        }
        let mut days: Vec<NaiveDate> = match directory.as_ref().and_then(|d| d.get("days")) {
            Some(AttributeValue::Ss(days)) => days.iter().filter_map(|d| d.parse().ok()).collect(),
            _ => Vec::new(),
        };
        days.retain(|d| (low..=high).contains(d));
        days.sort();
        Ok(days)
    }

    /// Drops directory days behind the watermark: nothing is ever written there again.
    async fn forget_due_days_before(&self, low: NaiveDate) -> Result<()> {
        let Some(directory) = self.get(due_days_key()).await? else {
            return Ok(());
        };
        let behind: Vec<String> = match directory.get("days") {
            Some(AttributeValue::Ss(days)) => days
                .iter()
                .filter(|d| d.parse::<NaiveDate>().is_ok_and(|d| d < low))
                .cloned()
                .collect(),
            _ => Vec::new(),
        };
        if behind.is_empty() {
            return Ok(());
        }
        let change = Change {
            key: due_days_key(),
            update: "DELETE days :d".into(),
            condition: None,
            names: HashMap::new(),
            values: HashMap::from([(":d".into(), AttributeValue::Ss(behind))]),
        };
        self.update(&change).await?;
        Ok(())
    }

    /// Makes the due-day directory complete: on a table that predates it, adds the day of
    /// every entry in the `due` index (one scan of that index, the only scan Lethe makes),
    /// then marks it complete. Writers add their days before writing meanwhile, so nothing
    /// written during the scan is left out.
    pub(super) async fn complete_due_days(&self) -> Result<()> {
        let directory = self.get(due_days_key()).await?;
        if directory
            .as_ref()
            .is_some_and(|d| matches!(d.get("complete"), Some(AttributeValue::Bool(true))))
        {
            return Ok(());
        }
        let mut days = std::collections::BTreeSet::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .scan()
                .table_name(&self.table)
                .index_name("due")
                .projection_expression("dpk")
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(sdk_error)?;
            for item in out.items.unwrap_or_default() {
                let day = opt_s(&item, "dpk").and_then(|p| p.split('#').nth(1).map(str::to_owned));
                if let Some(day) = day.filter(|d| d.parse::<NaiveDate>().is_ok()) {
                    days.insert(day);
                }
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => break,
            }
        }
        let mut values = HashMap::from([(":t".into(), b(true))]);
        let update = if days.is_empty() {
            "SET complete = :t".to_owned()
        } else {
            values.insert(":d".into(), AttributeValue::Ss(days.into_iter().collect()));
            "SET complete = :t ADD days :d".to_owned()
        };
        let change = Change {
            key: due_days_key(),
            update,
            condition: None,
            names: HashMap::new(),
            values,
        };
        self.update(&change).await?;
        Ok(())
    }

    /// Due-index entries with `due_at <= until`, day by day from the watermark, earliest
    /// first; `keep` filters what is returned (but not what counts as a non-empty day);
    /// stops at `limit`. Advances the watermark over days found empty.
    pub(super) async fn due_entries(
        &self,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
        keep: impl Fn(&Item) -> bool + Copy,
    ) -> Result<Vec<Item>> {
        let low = self.due_low(now).await?;
        let today = day(now);
        let mut found = Vec::new();
        let mut first_non_empty: Option<NaiveDate> = None;
        'days: for bucket in self.due_days(low, today).await? {
            for shard in 0..DUE_SHARDS {
                let mut start: Option<Item> = None;
                loop {
                    let out = self
                        .client
                        .query()
                        .table_name(&self.table)
                        .index_name("due")
                        .key_condition_expression("dpk = :p AND dsk <= :s")
                        .expression_attribute_values(":p", s(format!("DUE#{bucket}#{shard}")))
                        .expression_attribute_values(":s", s(format!("{}#~", padded(until))))
                        .limit(limit.clamp(1, 1000) as i32)
                        .set_exclusive_start_key(start.take())
                        .send()
                        .await
                        .map_err(sdk_error)?;
                    let items = out.items.unwrap_or_default();
                    if !items.is_empty() && first_non_empty.is_none() {
                        first_non_empty = Some(bucket);
                    }
                    found.extend(items.into_iter().filter(|i| keep(i)));
                    if found.len() >= limit {
                        break 'days;
                    }
                    match out.last_evaluated_key {
                        Some(key) if !key.is_empty() => start = Some(key),
                        _ => break,
                    }
                }
            }
        }
        // Days before the first one that held anything are empty for good: entries are
        // never written behind the writer's today. The watermark stays a skew margin
        // behind this instance's today, so an instance whose clock runs a little late
        // cannot write behind it.
        let complete = found.len() < limit;
        let new_low = match first_non_empty {
            Some(d) => d,
            None if complete => today,
            None => low,
        }
        .min(day(now - WATERMARK_SKEW));
        if new_low > low {
            self.advance_due_low(low, new_low).await?;
            self.forget_due_days_before(new_low).await?;
        }
        found.sort_by_key(|item| opt_s(item, "dsk"));
        found.truncate(limit);
        Ok(found)
    }
}
