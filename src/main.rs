use clap::Parser as _;

use imagegate::app::{App, shutdown_signal};
use imagegate::cli::{Cli, Command, init_tracing, load_config};
use imagegate::client;

/// Client commands print the server's message and exit non-zero on failure.
fn exit_on_error(result: Result<(), client::ClientError>) {
    if let Err(e) = result {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(flags) => {
            let config = load_config(&flags)?;
            init_tracing(config.log_format);
            imagegate::keys_cli::ensure_first_key(&config).await?;
            let app = App::build(config).await?;
            app.run(shutdown_signal()).await?;
            tracing::info!("stopped");
        }
        Command::Config(flags) => {
            let printed = imagegate::cli::explain_config(&flags)?;
            std::io::Write::write_all(&mut std::io::stdout(), printed.as_bytes())?;
        }
        Command::Migrate(flags) => {
            let config = load_config(&flags)?;
            init_tracing(config.log_format);
            let summary = imagegate::cli::migrate(&config).await?;
            std::io::Write::write_all(&mut std::io::stdout(), summary.as_bytes())?;
        }
        Command::Keys { command } => imagegate::keys_cli::run(command).await?,
        Command::Generate(args) => exit_on_error(client::generate(args).await),
        Command::Edit(args) => exit_on_error(client::edit(args).await),
        Command::Compose(args) => exit_on_error(client::compose(args).await),
        Command::Story(args) => exit_on_error(client::story(args).await),
        Command::Chat(args) => exit_on_error(client::chat(args).await),
        Command::Batch { command } => exit_on_error(client::batch(command).await),
    }
    Ok(())
}
