//! The deletion-guarantee simulation (issue 11): seeded runs of days to weeks of simulated
//! time — accounts in every mode, policy changes, uploads, transcripts with intermediates
//! and text inputs, gateway and streaming traffic, customer deletions, racing pipeline
//! calls, 1–4 instances that go down for hours across midnights, crashes between any two
//! port calls and random storage failures — checked after every step against an oracle
//! computed from the pure policy (see `world.rs` for the invariants).
//!
//! A failure prints its seed and the shortest step list that still fails.
//!
//! CI runs a fixed seed set (`LETHE_SIM_SEEDS`, default 12 on the embedded profile and 4
//! on the AWS profile, 160 steps each). Thousands:
//! `LETHE_SIM_SEEDS=2000 LETHE_SIM_STEPS=300 cargo test --release --test simulation -- --nocapture`;
//! one seed: `LETHE_SIM_SEED=42 cargo test --test simulation -- --nocapture`; another
//! range: `LETHE_SIM_FIRST_SEED=1000`.

mod oracle;
mod steps;
mod world;

use world::{Stats, World};

fn env_number(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

async fn run_once(
    seed: u64,
    steps: &[steps::Step],
    aws: bool,
) -> (Result<(), (usize, String)>, Stats) {
    let mut world = World::new(seed, aws).await;
    let result = world.run(steps).await;
    (result, world.stats.clone())
}

/// The invariant a violation broke: its `[tag]`.
fn category(violation: &str) -> &str {
    violation.split(']').next().unwrap_or(violation)
}

/// Shrinks a failing step list: drops chunks of it, halving the chunk size, as long as
/// what remains still breaks the same invariant.
async fn shrink(
    seed: u64,
    mut steps: Vec<steps::Step>,
    aws: bool,
    budget: usize,
    broken: &str,
) -> Vec<steps::Step> {
    let mut tries = 0;
    let mut chunk = steps.len() / 2;
    while chunk >= 1 && tries < budget {
        let mut start = 0;
        let mut progressed = false;
        while start < steps.len() && tries < budget {
            let end = (start + chunk).min(steps.len());
            // The first two steps create the accounts every other step refers to.
            if start < 2 {
                start = 2;
                continue;
            }
            let candidate: Vec<_> = steps[..start]
                .iter()
                .chain(&steps[end..])
                .cloned()
                .collect();
            tries += 1;
            let still = match run_once(seed, &candidate, aws).await.0 {
                Err((_, v)) => category(&v) == broken,
                Ok(()) => false,
            };
            if still {
                steps = candidate;
                progressed = true;
            } else {
                start = end;
            }
        }
        if !progressed {
            chunk /= 2;
        }
    }
    steps
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_runs_never_delete_early_never_miss_and_never_lose_a_deletion() {
    let aws = lethe::testing::aws_profile();
    let (default_seeds, default_steps) = if aws { (4, 120) } else { (12, 160) };
    let seeds: Vec<u64> = match env_number("LETHE_SIM_SEED") {
        Some(seed) => vec![seed],
        None => {
            let first = env_number("LETHE_SIM_FIRST_SEED").unwrap_or(1);
            let count = env_number("LETHE_SIM_SEEDS").unwrap_or(default_seeds);
            (first..first + count).collect()
        }
    };
    let len = env_number("LETHE_SIM_STEPS").unwrap_or(default_steps) as usize;
    let mut total = Stats::default();
    for seed in &seeds {
        let steps = steps::generate(*seed, len);
        let (result, stats) = run_once(*seed, &steps, aws).await;
        if let Err((at, violation)) = result {
            eprintln!("simulation seed {seed} failed at step {at}: {violation}");
            let prefix = steps[..=at.min(steps.len() - 1)].to_vec();
            let shortest = shrink(*seed, prefix, aws, 80, category(&violation)).await;
            let (again, _) = run_once(*seed, &shortest, aws).await;
            panic!(
                "seed {seed} violates the deletion guarantees at step {at}: {violation}\n\
                 shortest step list breaking the same invariant ({} steps; it fails with {again:?}):\n{:#?}",
                shortest.len(),
                shortest
            );
        }
        total.steps += stats.steps;
        total.simulated_hours += stats.simulated_hours;
        total.crashes += stats.crashes;
        total.faults_injected += stats.faults_injected;
        total.passes += stats.passes;
        total.clean_passes += stats.clean_passes;
        total.deletions += stats.deletions;
        total.artifacts += stats.artifacts;
        total.checks += stats.checks;
    }
    println!(
        "simulation ({} profile): {} seeds, {} steps, {:.1} simulated days, {} artifacts, {} deletions, \
         {} passes ({} clean), {} crashes, {} injected faults, {} oracle checks: no violation",
        if aws { "aws" } else { "embedded" },
        seeds.len(),
        total.steps,
        total.simulated_hours as f64 / 24.0,
        total.artifacts,
        total.deletions,
        total.passes,
        total.clean_passes,
        total.crashes,
        total.faults_injected,
        total.checks
    );
}
