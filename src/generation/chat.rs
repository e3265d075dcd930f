//! Chat sessions: stored conversations that refine an image turn by turn. Every turn
//! sends the history upstream — the recent images and every thought signature exactly as
//! received, older images named by id (`chat_context`) — and only a successful turn
//! joins the history.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use serde::Serialize;

use crate::caller::{Caller, RequestContext};
use crate::clock::{Clock, rfc3339};
use crate::config::SessionsConfig;
use crate::generation::GenerationError;
use crate::generation::chat_context;
use crate::generation::chat_order::ChatOrder;
use crate::generation::params::{Prompt, RawOptions};
use crate::generation::{Generator, Outcome};
use crate::ids;
use crate::imaging::{ImageFormat, InputImage};
use crate::models::ModelTable;
use crate::provider::{Part, PartData, ProviderRequest, Role, Task, Turn};
use crate::store::sessions::{SessionRecord, StoredPart, StoredTurn};
use crate::store::{ImageStore, SessionStore};

#[derive(Debug, Serialize)]
pub struct SessionCreated {
    pub session_id: String,
    pub model: String,
    pub created_at: String,
    pub expires_at: String,
}

#[derive(Debug, Serialize)]
pub struct SessionView {
    pub session_id: String,
    pub model: String,
    pub system_prompt: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    pub expires_at: String,
    /// Messages accepted and not yet finished (async ones queued, any one running).
    pub pending_messages: i64,
    pub turns: Vec<TurnView>,
}

#[derive(Debug, Serialize)]
pub struct TurnView {
    pub index: i64,
    pub role: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    pub images: Vec<ImageRef>,
    pub created_at: String,
}

#[derive(Debug, Serialize)]
pub struct ImageRef {
    pub image_id: String,
    pub url: String,
    pub mime_type: String,
}

pub struct ChatMessage {
    pub message: Prompt,
    pub image: Option<InputImage>,
    /// Per-turn options; the model is the session's.
    pub options: RawOptions,
}

pub struct ChatReply {
    pub outcome: Outcome,
    pub session_id: String,
    /// 1-based number of this user message in the session.
    pub turn: i64,
}

pub struct ChatService {
    pub sessions: Arc<SessionStore>,
    pub images: Arc<ImageStore>,
    pub generator: Generator,
    pub models: Arc<ModelTable>,
    pub clock: Arc<dyn Clock>,
    pub config: SessionsConfig,
    pub default_model: String,
    /// Messages run in the order they were accepted (`chat_order`).
    pub order: ChatOrder,
    /// One turn at a time per session in this process; the store's turn-count check
    /// catches writers on other instances.
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

fn not_found() -> GenerationError {
    GenerationError::not_found("The chat session")
}

impl ChatService {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        sessions: Arc<SessionStore>,
        images: Arc<ImageStore>,
        generator: Generator,
        models: Arc<ModelTable>,
        clock: Arc<dyn Clock>,
        config: SessionsConfig,
        default_model: String,
        order: ChatOrder,
    ) -> Self {
        Self {
            order,
            sessions,
            images,
            generator,
            models,
            clock,
            config,
            default_model,
            locks: Mutex::new(HashMap::new()),
        }
    }

    fn ttl_ms(&self) -> i64 {
        i64::try_from(self.config.idle_ttl_secs.saturating_mul(1000)).unwrap_or(i64::MAX)
    }

    pub async fn create(
        &self,
        caller: &Caller,
        model: Option<String>,
        system_prompt: Option<String>,
    ) -> Result<SessionCreated, GenerationError> {
        let model = model.unwrap_or_else(|| self.default_model.clone());
        self.models.resolve(&model)?;
        let system_prompt = match system_prompt {
            Some(p) if p.trim().is_empty() => None,
            Some(p) => Some(
                Prompt::parse(
                    "system_prompt",
                    Some(p),
                    self.config.max_system_prompt_chars,
                )?
                .as_str()
                .to_owned(),
            ),
            None => None,
        };
        let now = self.clock.now_ms();
        let record = SessionRecord {
            id: ids::new_id("chat"),
            owner: caller.key_id.clone(),
            model,
            system_prompt,
            created_at_ms: now,
            updated_at_ms: now,
            expires_at_ms: now.saturating_add(self.ttl_ms()),
            turn_count: 0,
            image_bytes: 0,
        };
        self.sessions.create(&record).await?;
        Ok(SessionCreated {
            session_id: record.id,
            model: record.model,
            created_at: rfc3339(record.created_at_ms),
            expires_at: rfc3339(record.expires_at_ms),
        })
    }

    async fn session(&self, caller: &Caller, id: &str) -> Result<SessionRecord, GenerationError> {
        if !ids::is_valid("chat", id) {
            return Err(not_found());
        }
        self.sessions
            .get(id, &caller.key_id, self.clock.now_ms())
            .await?
            .ok_or_else(not_found)
    }

    fn lock_for(&self, id: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.locks.lock().unwrap_or_else(|p| p.into_inner());
        // Forget locks nobody holds, so the map stays as small as the live traffic.
        locks.retain(|_, l| Arc::strong_count(l) > 1);
        locks.entry(id.to_owned()).or_default().clone()
    }

    /// The session, if it exists for `caller` and has room for one more message with
    /// `new_bytes` of image, counting the messages accepted before it that have not
    /// finished: checked when a message is accepted (so a client cannot queue more
    /// messages than the session can take) and again, without them, when it runs.
    pub async fn admit(
        &self,
        caller: &Caller,
        id: &str,
        new_bytes: i64,
    ) -> Result<SessionRecord, GenerationError> {
        let session = self.session(caller, id).await?;
        let pending = self.order.pending(id).await?;
        self.room(session, pending, new_bytes)
    }

    fn room(
        &self,
        session: SessionRecord,
        pending: i64,
        new_bytes: i64,
    ) -> Result<SessionRecord, GenerationError> {
        let messages = session.turn_count / 2 + pending;
        if messages >= i64::from(self.config.max_turns) {
            return Err(GenerationError::session_full(
                "This chat session is full; start a new one.",
            )
            .detail("reason", "max_turns")
            .detail("max_turns", self.config.max_turns)
            .detail("pending_messages", pending));
        }
        // The image budget bounds what one turn sends upstream, not the session: the
        // message's own image alone must fit; older images leave the context instead.
        if new_bytes > self.config.max_image_bytes as i64 {
            return Err(GenerationError::session_full(
                "This image is larger than a chat turn can carry upstream.",
            )
            .detail("reason", "max_image_bytes")
            .detail("max_image_bytes", self.config.max_image_bytes));
        }
        Ok(session)
    }

    /// Sends a message once every message of the session accepted before it has
    /// finished (`chat_order`).
    pub async fn send(
        &self,
        ctx: &RequestContext,
        id: &str,
        msg: ChatMessage,
    ) -> Result<ChatReply, GenerationError> {
        self.order
            .in_turn(&ctx.request_id, self.send_now(ctx, id, msg))
            .await
    }

    async fn send_now(
        &self,
        ctx: &RequestContext,
        id: &str,
        msg: ChatMessage,
    ) -> Result<ChatReply, GenerationError> {
        let lock = self.lock_for(id);
        let _turn = lock.lock().await;
        let new_bytes = msg.image.as_ref().map_or(0, |i| i.bytes.len() as i64);
        let session = self.session(&ctx.caller, id).await?;
        let session = self.room(session, 0, new_bytes)?;
        let messages = session.turn_count / 2;
        let stored = self.sessions.turns(id).await?;
        let in_context = chat_context::images_in_context(
            self.images.as_ref(),
            &self.config,
            &stored,
            new_bytes.max(0) as u64,
        )
        .await?;
        let mut contents = Vec::with_capacity(stored.len() + 1);
        for turn in &stored {
            contents.push(replay(turn, &in_context)?);
        }
        let mut user_parts = Vec::new();
        if let Some(image) = &msg.image {
            user_parts.push(Part::image(image.format, image.bytes.clone()));
        }
        user_parts.push(Part::text(msg.message.as_str()));
        contents.push(Turn {
            role: Role::User,
            parts: user_parts,
        });

        let options = RawOptions {
            model: Some(session.model.clone()),
            ..msg.options
        }
        .parse(&self.models, &self.default_model)?;
        let request = ProviderRequest::new(options, Task::Chat, contents)
            .with_system_instruction(session.system_prompt.clone());
        // A refused turn ends here, with the history untouched.
        let outcome = self.generator.run(ctx, request).await?;

        let now = self.clock.now_ms();
        let owner = &ctx.caller.key_id;
        let mut user_turn = StoredTurn {
            seq: session.turn_count,
            role: "user".into(),
            parts: Vec::new(),
            created_at_ms: now,
        };
        if let Some(image) = &msg.image {
            let image_id = ids::new_id("img");
            self.images
                .put(&image_id, owner, image.format, image.bytes.clone())
                .await?;
            user_turn
                .parts
                .push(image_part(image_id, image.format, None, false));
        }
        user_turn
            .parts
            .push(text_part(msg.message.as_str(), None, false));

        let mut model_turn = StoredTurn {
            seq: session.turn_count + 1,
            role: "model".into(),
            parts: Vec::new(),
            created_at_ms: now,
        };
        let mut returned_ids = outcome.response.image_ids.iter();
        let mut added = new_bytes;
        for part in &outcome.generated.model_turn.parts {
            let signature = part.thought_signature.as_ref().map(|s| STANDARD.encode(s));
            match &part.data {
                PartData::Text(t) => model_turn.parts.push(text_part(t, signature, part.thought)),
                PartData::Image { format, bytes } => {
                    let image_id = match (part.thought, returned_ids.next()) {
                        (false, Some(id)) => id.clone(),
                        _ => {
                            let id = ids::new_id("img");
                            self.images.put(&id, owner, *format, bytes.clone()).await?;
                            id
                        }
                    };
                    added += bytes.len() as i64;
                    model_turn
                        .parts
                        .push(image_part(image_id, *format, signature, part.thought));
                }
            }
        }
        let expires = now.saturating_add(self.ttl_ms());
        if !self
            .sessions
            .append(
                id,
                session.turn_count,
                &[user_turn, model_turn],
                added,
                now,
                expires,
            )
            .await?
        {
            return Err(GenerationError::conflict(
                "The chat session changed while this message was processed; send it again.",
            ));
        }
        Ok(ChatReply {
            outcome,
            session_id: id.to_owned(),
            turn: messages + 1,
        })
    }

    pub async fn history(&self, caller: &Caller, id: &str) -> Result<SessionView, GenerationError> {
        let session = self.session(caller, id).await?;
        let turns = self.sessions.turns(id).await?;
        let pending_messages = self.order.pending(id).await?;
        Ok(SessionView {
            pending_messages,
            session_id: session.id,
            model: session.model,
            system_prompt: session.system_prompt,
            created_at: rfc3339(session.created_at_ms),
            updated_at: rfc3339(session.updated_at_ms),
            expires_at: rfc3339(session.expires_at_ms),
            turns: turns.iter().map(view).collect(),
        })
    }

    pub async fn delete(&self, caller: &Caller, id: &str) -> Result<(), GenerationError> {
        if ids::is_valid("chat", id) && self.sessions.delete(id, &caller.key_id).await? {
            Ok(())
        } else {
            Err(not_found())
        }
    }

    pub async fn sweep_expired(&self) -> Result<u64, GenerationError> {
        Ok(self.sessions.delete_expired(self.clock.now_ms()).await?)
    }
}

/// A stored turn as it is sent upstream again: signatures restored, images in context as
/// their bytes, older ones as a text naming them.
fn replay(turn: &StoredTurn, in_context: &HashMap<String, Bytes>) -> Result<Turn, GenerationError> {
    let mut parts = Vec::with_capacity(turn.parts.len());
    for p in &turn.parts {
        let signature = match &p.signature {
            Some(s) => {
                Some(Bytes::from(STANDARD.decode(s).map_err(
                    GenerationError::failed("reading a stored signature"),
                )?))
            }
            None => None,
        };
        let data = match (&p.image_id, &p.text) {
            (Some(image_id), _) => match in_context.get(image_id) {
                Some(bytes) => {
                    let format = ImageFormat::sniff(bytes).ok_or_else(|| {
                        GenerationError::internal("history image has an unknown format")
                    })?;
                    PartData::Image {
                        format,
                        bytes: bytes.clone(),
                    }
                }
                None => PartData::Text(chat_context::placeholder(image_id)),
            },
            (None, text) => PartData::Text(text.clone().unwrap_or_default()),
        };
        parts.push(Part {
            data,
            thought: p.thought,
            thought_signature: signature,
        });
    }
    Ok(Turn {
        role: if turn.role == "model" {
            Role::Model
        } else {
            Role::User
        },
        parts,
    })
}

fn text_part(text: &str, signature: Option<String>, thought: bool) -> StoredPart {
    StoredPart {
        text: Some(text.to_owned()),
        image_id: None,
        mime: None,
        thought,
        signature,
    }
}

fn image_part(
    image_id: String,
    format: ImageFormat,
    signature: Option<String>,
    thought: bool,
) -> StoredPart {
    StoredPart {
        text: None,
        image_id: Some(image_id),
        mime: Some(format.mime().to_owned()),
        thought,
        signature,
    }
}

/// History for clients: thought parts left out, images as ids and URLs.
fn view(turn: &StoredTurn) -> TurnView {
    let visible = || turn.parts.iter().filter(|p| !p.thought);
    let text: Vec<&str> = visible()
        .filter_map(|p| p.text.as_deref())
        .filter(|t| !t.is_empty())
        .collect();
    TurnView {
        index: turn.seq,
        role: turn.role.clone(),
        text: (!text.is_empty()).then(|| text.join("\n")),
        images: visible()
            .filter_map(|p| {
                p.image_id.as_ref().map(|id| ImageRef {
                    image_id: id.clone(),
                    url: format!("/images/{id}"),
                    mime_type: p.mime.clone().unwrap_or_default(),
                })
            })
            .collect(),
        created_at: rfc3339(turn.created_at_ms),
    }
}
