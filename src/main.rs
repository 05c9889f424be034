use clap::Parser;

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
