use clap::Parser;

/// mimalloc instead of glibc's allocator: a profile of the list under 8 clients spent a
/// fifth of the CPU in glibc's malloc and free across the runtime's and SQLite's threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = lethe::cli::Cli::parse();
    match lethe::cli::run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("lethe: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
