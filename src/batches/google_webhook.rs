//! Google's batch events (`batch.succeeded|failed|expired`), pushed by a Gemini API webhook
//! the operator registered, signed per Standard Webhooks: `webhook-id`,
//! `webhook-timestamp` and `webhook-signature` (`v1,<base64 HMAC-SHA256 of
//! "id.timestamp.body">`, several separated by spaces while a secret rotates). An event
//! only makes its batch due for collection now: what the batch holds is still read
//! from the Batch API, so a forged event could at worst cost one early poll.

use subtle::ConstantTimeEq as _;

use crate::generation::GenerationError;
use crate::jobs::webhooks::sign;

/// Older or newer messages are refused, so a captured delivery cannot be replayed later.
const TOLERANCE_SECS: i64 = 300;

pub struct SignedMessage<'a> {
    pub id: &'a str,
    pub timestamp: &'a str,
    pub signatures: &'a str,
    pub body: &'a str,
}

fn refused(message: &'static str) -> GenerationError {
    GenerationError::SignatureRefused { message }
}

/// Checks the message's signature against `secret` and its age against `now_secs`.
pub fn verify(
    secret: &str,
    message: &SignedMessage<'_>,
    now_secs: i64,
) -> Result<(), GenerationError> {
    let timestamp: i64 = message
        .timestamp
        .trim()
        .parse()
        .map_err(|_| refused("The webhook-timestamp header is not a number."))?;
    if (now_secs - timestamp).abs() > TOLERANCE_SECS {
        return Err(refused(
            "The webhook message is too old or from the future.",
        ));
    }
    let expected = sign(secret, message.id, timestamp, message.body)
        .ok_or_else(|| GenerationError::internal("batches.google_webhook_secret is not base64"))?;
    let matches = message
        .signatures
        .split_whitespace()
        .any(|s| bool::from(s.as_bytes().ct_eq(expected.as_bytes())));
    if matches {
        Ok(())
    } else {
        Err(refused("The webhook signature does not match."))
    }
}

/// The batch an event is about (`batches/…`), wherever the event puts its name.
pub fn batch_name(event: &serde_json::Value) -> Option<String> {
    let data = &event["data"];
    [
        &data["name"],
        &data["batch"],
        &data["id"],
        &event["name"],
        &event["subject"],
    ]
    .into_iter()
    .filter_map(|v| v.as_str())
    .find(|s| s.starts_with("batches/"))
    .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    fn message<'a>(signatures: &'a str, body: &'a str, timestamp: &'a str) -> SignedMessage<'a> {
        SignedMessage {
            id: "msg_1",
            timestamp,
            signatures,
            body,
        }
    }

    #[test]
    fn a_signed_event_is_accepted_and_a_tampered_one_refused() {
        let body = r#"{"type":"batch.succeeded","data":{"name":"batches/abc"}}"#;
        let sig = sign(SECRET, "msg_1", 1_000, body).unwrap();
        let both = format!("v1,bm90IHRoaXM= {sig}");
        assert!(verify(SECRET, &message(&both, body, "1000"), 1_010).is_ok());
        let tampered = body.replace("abc", "abd");
        assert!(verify(SECRET, &message(&sig, &tampered, "1000"), 1_010).is_err());
        assert!(verify(SECRET, &message(&sig, body, "1000"), 1_000 + 301).is_err());
        assert!(verify(SECRET, &message(&sig, body, "x"), 1_000).is_err());
    }

    #[test]
    fn the_batch_name_is_found_in_the_event_data() {
        let event = serde_json::json!({"type": "batch.succeeded", "data": {"name": "batches/abc"}});
        assert_eq!(batch_name(&event).as_deref(), Some("batches/abc"));
        assert_eq!(batch_name(&serde_json::json!({"data": {}})), None);
    }
}
