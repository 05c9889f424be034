//! The steps a simulated run is made of, and the seeded generator that writes a run.
//!
//! Steps name what they act on by index (the n-th account, transcript, instance…), taken
//! modulo what exists when the step runs, so any sub-list of a run is itself a valid run:
//! that is what lets a failure be shrunk to the shortest list that still fails.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Retention settings an account is created with.
#[derive(Clone, Copy, Debug)]
pub enum AccountKind {
    /// `transcript_ttl` of this many hours.
    Ttl(i64),
    Baa,
    Default,
    Zdr,
    /// Opted out of model training (streaming gets zero data retention).
    OptedOut,
    Eu,
}

/// A change an account's settings may go through.
#[derive(Clone, Copy, Debug)]
pub enum Change {
    /// Sets (or shortens, or lengthens) the transcript TTL to this many hours.
    Ttl(i64),
    RemoveTtl,
    ExecuteBaa,
    UploadTtl(i64),
    OptOut,
}

#[derive(Clone, Debug)]
pub enum Step {
    CreateAccount(AccountKind),
    ChangeSettings {
        account: usize,
        change: Change,
    },
    Upload {
        account: usize,
    },
    /// A transcript from a foreign URL with text inputs, or from one of the account's uploads.
    CreateTranscript {
        account: usize,
        from_upload: bool,
    },
    /// `processing` and one intermediate.
    Process {
        transcript: usize,
    },
    /// `complete` (or `error`) called by `racers` clients at once, on any instances.
    Finish {
        transcript: usize,
        racers: usize,
        error: bool,
    },
    SpeechUnderstanding {
        transcript: usize,
    },
    CustomerDelete {
        transcript: usize,
    },
    Gateway {
        account: usize,
        provider: &'static str,
        on_transcript: bool,
    },
    Streaming {
        account: usize,
        ended_minutes_ago: i64,
    },
    DeleteStandalone {
        which: usize,
    },
    /// Time passes.
    Advance {
        minutes: i64,
    },
    /// Passes on `instances` up instances at once.
    Sweep {
        instances: usize,
    },
    Down {
        instance: usize,
    },
    Up {
        instance: usize,
    },
    /// The instance dies after this many more port calls, mid-way through whatever it does.
    Crash {
        instance: usize,
        after_calls: u64,
    },
    /// The instance's port calls fail at random (per mille) until healed.
    Flaky {
        instance: usize,
        per_mille: u32,
    },
    Heal {
        instance: usize,
    },
    Reconcile {
        repair: bool,
    },
}

/// A run of `len` steps from `seed`: days to weeks of simulated time with everything a
/// deployment sees.
pub fn generate(seed: u64, len: usize) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut steps = vec![
        Step::CreateAccount(AccountKind::Ttl(1)),
        Step::CreateAccount(AccountKind::Default),
    ];
    let providers = [
        "openai",
        "anthropic",
        "google",
        "mistral",
        " Anthropic",
        "claude",
        "gemini",
        "vertex-ai",
        "acme-llm",
    ];
    while steps.len() < len {
        let r: u32 = rng.gen_range(0..1000);
        let n = |rng: &mut StdRng| rng.gen_range(0..64usize);
        let step = match r {
            0..=29 => Step::CreateAccount(match rng.gen_range(0..7) {
                0 => AccountKind::Ttl(rng.gen_range(1..=72)),
                1 => AccountKind::Baa,
                2 => AccountKind::Zdr,
                3 => AccountKind::OptedOut,
                4 => AccountKind::Eu,
                _ => AccountKind::Default,
            }),
            30..=79 => Step::ChangeSettings {
                account: n(&mut rng),
                change: match rng.gen_range(0..6) {
                    0 | 1 => Change::Ttl(rng.gen_range(1..=96)),
                    2 => Change::RemoveTtl,
                    3 => Change::ExecuteBaa,
                    4 => Change::UploadTtl(rng.gen_range(1..=100)),
                    _ => Change::OptOut,
                },
            },
            80..=179 => Step::Upload {
                account: n(&mut rng),
            },
            180..=329 => Step::CreateTranscript {
                account: n(&mut rng),
                from_upload: rng.gen_bool(0.4),
            },
            330..=429 => Step::Process {
                transcript: n(&mut rng),
            },
            430..=539 => Step::Finish {
                transcript: n(&mut rng),
                racers: if rng.gen_bool(0.25) {
                    rng.gen_range(2..=6)
                } else {
                    1
                },
                error: rng.gen_bool(0.2),
            },
            540..=564 => Step::SpeechUnderstanding {
                transcript: n(&mut rng),
            },
            565..=604 => Step::CustomerDelete {
                transcript: n(&mut rng),
            },
            605..=644 => Step::Gateway {
                account: n(&mut rng),
                provider: providers[rng.gen_range(0..providers.len())],
                on_transcript: rng.gen_bool(0.3),
            },
            645..=674 => Step::Streaming {
                account: n(&mut rng),
                ended_minutes_ago: if rng.gen_bool(0.1) {
                    rng.gen_range(60..=5000)
                } else {
                    rng.gen_range(0..30)
                },
            },
            675..=689 => Step::DeleteStandalone { which: n(&mut rng) },
            690..=829 => Step::Advance {
                minutes: match rng.gen_range(0..10) {
                    0..=4 => rng.gen_range(1..=90),
                    5..=7 => rng.gen_range(90..=720),
                    // Across a midnight or two.
                    _ => rng.gen_range(720..=3000),
                },
            },
            830..=909 => Step::Sweep {
                instances: rng.gen_range(1..=3),
            },
            910..=929 => Step::Down {
                instance: n(&mut rng),
            },
            930..=954 => Step::Up {
                instance: n(&mut rng),
            },
            955..=969 => Step::Crash {
                instance: n(&mut rng),
                after_calls: rng.gen_range(0..12),
            },
            970..=979 => Step::Flaky {
                instance: n(&mut rng),
                per_mille: rng.gen_range(50..=300),
            },
            980..=989 => Step::Heal {
                instance: n(&mut rng),
            },
            _ => Step::Reconcile {
                repair: rng.gen_bool(0.7),
            },
        };
        steps.push(step);
    }
    steps
}
