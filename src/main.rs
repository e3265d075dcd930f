use clap::Parser as _;

use imagegate::app::{App, shutdown_signal};
use imagegate::cli::{Cli, Command, init_tracing, load_config};

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
            let config = load_config(&flags)?;
            let summary = format!(
                "{config:#?}\neffective provider: {:?}\n",
                config.effective_provider()
            );
            std::io::Write::write_all(&mut std::io::stdout(), summary.as_bytes())?;
        }
        Command::Keys { command } => imagegate::keys_cli::run(command).await?,
    }
    Ok(())
}
