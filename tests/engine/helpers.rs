#![allow(dead_code)]

use bytes::Bytes;
use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::stream;
use lethe::clock::ManualClock;
use lethe::config::Config;
use lethe::domain::{Account, ArtifactKind, Content, RetentionSettings, Transcript};
use lethe::engine::{AudioSource, Engine, NewTranscript};
use lethe::startup::App;
use lethe::storage::{Backends, ByteStream};
use std::sync::Arc;
use tempfile::TempDir;

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 11, 9, 0, 0)
        .single()
        .expect("valid time")
}

pub fn hours(h: i64) -> Duration {
    Duration::hours(h)
}

pub struct TestEngine {
    pub dir: TempDir,
    pub clock: ManualClock,
    pub app: App,
    pub config: Config,
}

impl TestEngine {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// The embedded profile whatever `LETHE_TEST_PROFILE` says (tests of its files).
    pub async fn start_embedded() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::defaults();
        config.data_dir = dir.path().to_owned();
        let clock = ManualClock::new(t0());
        let app = App::build(config.clone(), Arc::new(clock.clone()))
            .await
            .expect("app builds");
        Self {
            dir,
            clock,
            app,
            config,
        }
    }

    /// A sweep schedule that never fires before 2099: only the loop's other wake-ups act.
    pub async fn start_without_cron() -> Self {
        Self::start_with(|c| c.sweep_schedule = "0 0 0 1 1 * 2099".parse().expect("cron")).await
    }

    pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> Self {
        if std::env::var_os("TEST_LOG").is_some() {
            lethe::telemetry::init(lethe::config::LogFormat::Pretty);
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = Config::defaults();
        config.data_dir = dir.path().to_owned();
        tweak(&mut config);
        lethe::testing::apply_profile(&mut config, t0()).await;
        let clock = ManualClock::new(t0());
        let app = App::build(config.clone(), Arc::new(clock.clone()))
            .await
            .expect("app builds");
        Self {
            dir,
            clock,
            app,
            config,
        }
    }

    /// Another instance on the same stores and clock whose every port call goes through
    /// `faults` first (failures and crashes as they really arrive).
    pub fn faulty_app(&self, faults: &Arc<lethe::testing::faults::Faults>) -> App {
        App::with_backends(
            self.config.clone(),
            Arc::new(self.clock.clone()),
            lethe::testing::faults::faulty(self.backends(), faults),
        )
    }

    /// A second engine (another "instance") on the same stores and clock.
    pub async fn another_instance(&self) -> App {
        App::build(self.config.clone(), Arc::new(self.clock.clone()))
            .await
            .expect("app builds")
    }

    pub fn engine(&self) -> &Engine {
        &self.app.engine
    }

    pub fn backends(&self) -> &Backends {
        self.app.engine.backends()
    }

    pub async fn account(&self, settings: RetentionSettings) -> Account {
        self.engine()
            .create_account("acme", settings)
            .await
            .expect("account")
            .0
    }

    pub async fn ttl_account(&self, ttl: Duration) -> Account {
        self.account(RetentionSettings {
            transcript_ttl: Some(ttl),
            ..Default::default()
        })
        .await
    }

    pub async fn upload(&self, account: &Account, bytes: &'static [u8]) -> lethe::domain::Artifact {
        let body: ByteStream = Box::pin(stream::iter(vec![Ok(Bytes::from_static(bytes))]));
        self.engine().upload(account, body).await.expect("upload")
    }

    /// A transcript from a foreign URL with text inputs, as `POST /v2/transcript` makes it.
    pub async fn url_transcript(&self, account: &Account) -> Transcript {
        self.engine()
            .create_transcript(
                account,
                NewTranscript {
                    audio: AudioSource::Url(Content::new(
                        "https://example.com/secret-audio.mp3?sig=MARKER-URL",
                    )),
                    options: serde_json::json!({"speech_model": "universal"}),
                    text_inputs: Some(Content::new(r#"{"prompt":"MARKER-PROMPT"}"#)),
                    webhook_auth: false,
                },
            )
            .await
            .expect("transcript")
    }

    pub async fn upload_transcript(
        &self,
        account: &Account,
        upload: &lethe::domain::Artifact,
    ) -> Transcript {
        self.engine()
            .create_transcript(
                account,
                NewTranscript {
                    audio: AudioSource::Upload(upload.id),
                    options: serde_json::json!({}),
                    text_inputs: None,
                    webhook_auth: false,
                },
            )
            .await
            .expect("transcript")
    }

    /// Runs the pipeline on a transcript: processing, one intermediate, completion.
    pub async fn process(&self, transcript: &Transcript) -> Transcript {
        let lethe = self.engine();
        lethe
            .mark_processing(transcript.id)
            .await
            .expect("processing");
        lethe
            .put_intermediate(
                transcript.id,
                "chunk-0",
                Box::pin(stream::iter(vec![Ok(Bytes::from_static(
                    b"MARKER-INTERMEDIATE",
                ))])),
            )
            .await
            .expect("intermediate");
        lethe
            .complete(
                transcript.id,
                Content::new(r#"{"text":"MARKER-TEXT"}"#),
                Some(12.5),
            )
            .await
            .expect("complete")
    }

    pub async fn sweep(&self) -> lethe::domain::SweepReport {
        self.app
            .sweeper
            .run_once(self.clock.now_for_tests())
            .await
            .expect("sweep")
    }

    pub async fn artifacts_of(&self, transcript: &Transcript) -> Vec<lethe::domain::Artifact> {
        self.backends()
            .index
            .artifacts_for_transcript(transcript.id)
            .await
            .expect("artifacts")
    }

    pub async fn artifact_of_kind(
        &self,
        transcript: &Transcript,
        kind: ArtifactKind,
    ) -> lethe::domain::Artifact {
        self.artifacts_of(transcript)
            .await
            .into_iter()
            .find(|a| a.kind == kind)
            .unwrap_or_else(|| panic!("no {kind} artifact"))
    }

    /// Every byte of every file under the data dir, for "nothing remains readable" checks.
    /// Asserts that the content store holds no object of the account and no data key at
    /// all (every scope's key destroyed).
    pub async fn assert_no_content_left(&self, account: &Account) {
        let content = &self.backends().content;
        let scopes = content.scopes_with_keys(None, 100).await.expect("scopes");
        assert!(scopes.is_empty(), "no key outlives its content: {scopes:?}");
        let objects = content
            .list(&account.id.to_string(), None, 100)
            .await
            .expect("list");
        assert!(objects.is_empty(), "{objects:?}");
    }

    pub fn data_dir_contains(&self, needle: &str) -> Vec<std::path::PathBuf> {
        let mut hits = Vec::new();
        let mut dirs = vec![self.dir.path().to_owned()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("read dir") {
                let path = entry.expect("entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else if let Ok(bytes) = std::fs::read(&path) {
                    if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                        hits.push(path);
                    }
                }
            }
        }
        hits
    }
}

pub trait NowForTests {
    fn now_for_tests(&self) -> DateTime<Utc>;
}

impl NowForTests for ManualClock {
    fn now_for_tests(&self) -> DateTime<Utc> {
        lethe::clock::Clock::now(self)
    }
}
