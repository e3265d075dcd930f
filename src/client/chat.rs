//! `imagegate chat`: an interactive session that saves each turn's image. Reads one
//! message per line from stdin, so it can be driven from a pipe. `/image PATH message`
//! attaches an image; `/quit` (or end of input) ends the session.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;

use reqwest::Method;
use serde_json::json;

use super::{Client, ClientError, Target, extension, read_file, save_image};

#[derive(Debug, clap::Args)]
pub struct ChatArgs {
    #[arg(long)]
    pub model: Option<String>,
    /// The session's system prompt.
    #[arg(long)]
    pub system: Option<String>,
    /// Directory for turn-01.png, turn-02.png, …
    #[arg(long = "out", default_value = "chat")]
    pub out: PathBuf,
    /// Keep the session on the server when done (default: delete it).
    #[arg(long)]
    pub keep: bool,
    #[command(flatten)]
    pub target: Target,
}

pub async fn chat(args: ChatArgs) -> Result<(), ClientError> {
    let client = Client::new(args.target)?;
    let mut create = json!({});
    if let Some(m) = &args.model {
        create["model"] = m.clone().into();
    }
    if let Some(s) = &args.system {
        create["system_prompt"] = s.clone().into();
    }
    let session = client
        .send(client.request(Method::POST, "/chat/create").json(&create))
        .await?;
    let id = session["session_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    eprintln!(
        "session {id} ({})",
        session["model"].as_str().unwrap_or("?")
    );
    let interactive = std::io::stdin().is_terminal();
    let mut turn = 0;
    let mut lines = std::io::stdin().lock().lines();
    loop {
        if interactive {
            eprint!("> ");
            let _ = std::io::stderr().flush();
        }
        let Some(line) = lines.next() else { break };
        let line = line.map_err(|e| ClientError::local(format!("cannot read input: {e}")))?;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if line == "/quit" {
            break;
        }
        let path = format!("/chat/{id}/message");
        let request = match line.strip_prefix("/image ") {
            Some(rest) => {
                let (file, message) = rest.split_once(' ').unwrap_or((rest, "Use this image."));
                let form = reqwest::multipart::Form::new()
                    .text("message", message.to_owned())
                    .part("image", read_file(std::path::Path::new(file)).await?);
                client.request(Method::POST, &path).multipart(form)
            }
            None => client
                .request(Method::POST, &path)
                .json(&json!({"message": line})),
        };
        let reply = match client.send(request).await {
            Ok(reply) => reply,
            // One refused turn does not end the conversation (it is not in the history).
            Err(
                e @ ClientError::Api {
                    status: 400 | 422, ..
                },
            ) => {
                eprintln!("error: {e}");
                continue;
            }
            Err(e) => return Err(e),
        };
        turn += 1;
        if let Some(b64) = reply["images"][0].as_str() {
            let mime = reply["mime_types"][0].as_str().unwrap_or("image/png");
            let saved = save_image(
                b64,
                &args.out.join(format!("turn-{turn:02}.{}", extension(mime))),
            )?;
            println!("{}", saved.display());
        }
        if let Some(text) = reply["text"].as_str() {
            println!("{text}");
        }
    }
    if !args.keep {
        let _ = client
            .send(client.request(Method::DELETE, &format!("/chat/{id}")))
            .await;
    }
    Ok(())
}
