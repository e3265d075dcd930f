//! One-shot commands: generate, edit, compose, story.

use std::path::{Path, PathBuf};

use futures_util::StreamExt as _;
use reqwest::Method;
use serde_json::{Value, json};

use super::{Client, ClientError, Target, api_error, extension, read_file, save_first, save_image};

/// Options shared by the generation commands.
#[derive(Debug, Clone, clap::Args)]
pub struct Shape {
    #[arg(long)]
    pub model: Option<String>,
    /// e.g. 16:9
    #[arg(long)]
    pub aspect_ratio: Option<String>,
    /// 512, 1K, 2K or 4K
    #[arg(long)]
    pub size: Option<String>,
    #[arg(long)]
    pub temperature: Option<f64>,
}

impl Shape {
    fn form(&self, mut form: reqwest::multipart::Form) -> reqwest::multipart::Form {
        for (name, value) in [
            ("model", self.model.clone()),
            ("aspect_ratio", self.aspect_ratio.clone()),
            ("image_size", self.size.clone()),
            ("temperature", self.temperature.map(|t| t.to_string())),
        ] {
            if let Some(v) = value {
                form = form.text(name, v);
            }
        }
        form
    }

    fn json(&self, body: &mut Value) {
        for (name, value) in [
            ("model", self.model.clone().map(Value::from)),
            ("aspect_ratio", self.aspect_ratio.clone().map(Value::from)),
            ("image_size", self.size.clone().map(Value::from)),
            ("temperature", self.temperature.map(Value::from)),
        ] {
            if let Some(v) = value {
                body[name] = v;
            }
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct GenerateArgs {
    pub prompt: String,
    /// Where to write the image (default image.<ext>).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub shape: Shape,
    #[command(flatten)]
    pub target: Target,
}

/// Sends a generation request, saves its first image to `output` (or `image.<ext>`) and
/// prints where, with the model, the image id and any text.
async fn send_and_save(
    client: &Client,
    request: reqwest::RequestBuilder,
    output: Option<&Path>,
) -> Result<(), ClientError> {
    let response = client.send(request).await?;
    let saved = save_first(&response, output)?;
    println!(
        "{} ({}, {})",
        saved.display(),
        response["model"].as_str().unwrap_or("?"),
        response["image_ids"][0].as_str().unwrap_or("?")
    );
    if let Some(text) = response["text"].as_str() {
        println!("{text}");
    }
    Ok(())
}

pub async fn generate(args: GenerateArgs) -> Result<(), ClientError> {
    let client = Client::new(args.target)?;
    let mut body = json!({"prompt": args.prompt});
    args.shape.json(&mut body);
    let request = client.request(Method::POST, "/generate-image").json(&body);
    send_and_save(&client, request, args.output.as_deref()).await
}

#[derive(Debug, clap::Args)]
pub struct EditArgs {
    pub image: PathBuf,
    pub prompt: String,
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// 0.1–1.0
    #[arg(long)]
    pub strength: Option<f64>,
    #[arg(long)]
    pub preserve_subject: bool,
    #[command(flatten)]
    pub shape: Shape,
    #[command(flatten)]
    pub target: Target,
}

pub async fn edit(args: EditArgs) -> Result<(), ClientError> {
    let client = Client::new(args.target)?;
    let mut form = reqwest::multipart::Form::new()
        .part("image", read_file(&args.image).await?)
        .text("prompt", args.prompt)
        .text("preserve_subject", args.preserve_subject.to_string());
    if let Some(s) = args.strength {
        form = form.text("edit_strength", s.to_string());
    }
    let form = args.shape.form(form);
    let request = client.request(Method::POST, "/edit-image").multipart(form);
    send_and_save(&client, request, args.output.as_deref()).await
}

#[derive(Debug, clap::Args)]
pub struct ComposeArgs {
    /// Two or three images, then the prompt.
    #[arg(num_args = 3..=4, required = true)]
    pub inputs: Vec<String>,
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// blend, collage, side_by_side, stacked or overlay
    #[arg(long)]
    pub style: Option<String>,
    #[command(flatten)]
    pub shape: Shape,
    #[command(flatten)]
    pub target: Target,
}

pub async fn compose(args: ComposeArgs) -> Result<(), ClientError> {
    let client = Client::new(args.target)?;
    let (prompt, images) = args
        .inputs
        .split_last()
        .ok_or_else(|| ClientError::local("give two or three images and a prompt"))?;
    let mut form = reqwest::multipart::Form::new().text("prompt", prompt.clone());
    for image in images {
        form = form.part("images", read_file(Path::new(image)).await?);
    }
    if let Some(style) = args.style {
        form = form.text("composition_style", style);
    }
    let form = args.shape.form(form);
    let request = client
        .request(Method::POST, "/compose-images")
        .multipart(form);
    send_and_save(&client, request, args.output.as_deref()).await
}

#[derive(Debug, clap::Args)]
pub struct StoryArgs {
    pub description: String,
    /// Number of steps (1–10).
    #[arg(short = 'n', long = "num-images", default_value_t = 4)]
    pub num_images: u32,
    /// Directory for step-01.png, step-02.png, … and captions.txt.
    #[arg(long = "out", default_value = "story")]
    pub out: PathBuf,
    /// story, recipe, tutorial, comic, storyboard, timeline or product
    #[arg(long)]
    pub content_type: Option<String>,
    #[arg(long)]
    pub style: Option<String>,
    #[command(flatten)]
    pub shape: Shape,
    #[command(flatten)]
    pub target: Target,
}

/// Streams the story (`Accept: text/event-stream`) so each step's bar fills as it is done.
pub async fn story(args: StoryArgs) -> Result<(), ClientError> {
    let client = Client::new(args.target)?;
    let mut body = json!({"description": args.description, "num_images": args.num_images});
    if let Some(t) = args.content_type {
        body["content_type"] = t.into();
    }
    if let Some(s) = args.style {
        body["style"] = s.into();
    }
    args.shape.json(&mut body);
    let request = client
        .request(Method::POST, "/story/generate")
        .header("accept", "text/event-stream")
        .json(&body);
    let response = client.send_raw(request).await?;
    let bars = indicatif::MultiProgress::new();
    let style = indicatif::ProgressStyle::with_template("{prefix:>8} [{bar:20}] {msg}")
        .map_err(|e| ClientError::local(e.to_string()))?
        .progress_chars("=> ");
    let step_bars: Vec<indicatif::ProgressBar> = (1..=args.num_images)
        .map(|i| {
            let bar = bars.add(indicatif::ProgressBar::new(1).with_style(style.clone()));
            bar.set_prefix(format!("step {i}"));
            bar.set_message("waiting");
            bar
        })
        .collect();
    if let Some(first) = step_bars.first() {
        first.set_message("generating…");
    }
    let mut captions = Vec::new();
    let mut buffer = String::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| ClientError::local(format!("the stream broke: {e}")))?;
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let name = block
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or_default();
            let data: String = block
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .collect();
            let event: Value = serde_json::from_str(&data).unwrap_or_default();
            match name {
                "step" => {
                    let index = event["index"].as_u64().unwrap_or(0) as usize;
                    let mime = event["mime_type"].as_str().unwrap_or("image/png");
                    let path = args
                        .out
                        .join(format!("step-{index:02}.{}", extension(mime)));
                    save_image(event["image"].as_str().unwrap_or_default(), &path)?;
                    let caption = event["caption"].as_str().unwrap_or_default().to_owned();
                    if let Some(bar) = step_bars.get(index.saturating_sub(1)) {
                        bar.finish_with_message(format!("{} — {caption}", path.display()));
                    }
                    if let Some(next) = step_bars.get(index) {
                        next.set_message("generating…");
                    }
                    captions.push(format!("{index}. {caption}"));
                }
                "error" => {
                    return Err(api_error(
                        event["status"].as_u64().unwrap_or(422) as u16,
                        &event,
                    ));
                }
                "done" => {
                    let path = args.out.join("captions.txt");
                    std::fs::write(&path, captions.join("\n") + "\n").map_err(|e| {
                        ClientError::local(format!("cannot write {}: {e}", path.display()))
                    })?;
                    return Ok(());
                }
                _ => {}
            }
        }
    }
    Err(ClientError::local(
        "the server closed the stream before the story was done",
    ))
}
