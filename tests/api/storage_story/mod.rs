//! One storage story, told to every backend: keys, chat sessions, image metadata and
//! bytes, usage, idempotent results, and the async queue (claims, leases, fencing,
//! cancel, webhook deliveries). SQLite always; PostgreSQL in a schema of its own; the
//! blob half on files and on S3.

mod queue;
mod upgrade;

use std::collections::HashSet;

use bytes::Bytes;
use imagegate::config::{Config, ServiceUrl};
use imagegate::generation::Usage;
use imagegate::ids::new_id;
use imagegate::imaging::ImageFormat;
use imagegate::store::idempotency::{IdempotentResult, StoredResponse};
use imagegate::store::sessions::{SessionRecord, StoredPart, StoredTurn};
use imagegate::store::usage::{UsageEvent, utc_day};
use imagegate::store::{ObjectBlobs, Storage};

use crate::support::services::{PgSchema, S3Bucket};

const NOW: i64 = 1_772_409_000_000;
/// The highest migration on main; whoever lands a migration raises it.
const SCHEMA_VERSION: i64 = 11;

async fn keys_are_found_by_digest_until_revoked(s: &Storage) {
    let issued = imagegate::auth::issue_key(s.keys.as_ref(), "free", Some("ci".into()), NOW)
        .await
        .unwrap();
    let found = s.keys.find_active(&issued.record.digest).await.unwrap();
    assert_eq!(found.as_ref(), Some(&issued.record));
    assert_eq!(s.keys.list().await.unwrap(), vec![issued.record.clone()]);
    assert!(s.keys.revoke(&issued.record.key_id, NOW + 1).await.unwrap());
    assert!(!s.keys.revoke(&issued.record.key_id, NOW + 2).await.unwrap());
    assert_eq!(
        s.keys.find_active(&issued.record.digest).await.unwrap(),
        None
    );
    let listed = s.keys.list().await.unwrap();
    assert_eq!(
        listed[0].revoked_at_ms,
        Some(NOW + 1),
        "revoked keys stay listed"
    );
}

fn turn(seq: i64, role: &str, image_id: Option<&str>) -> StoredTurn {
    StoredTurn {
        seq,
        role: role.into(),
        parts: vec![StoredPart {
            text: Some(format!("turn {seq}")),
            image_id: image_id.map(str::to_owned),
            mime: image_id.map(|_| "image/png".to_owned()),
            thought: role == "model",
            signature: Some("AAEC/w==".into()),
        }],
        created_at_ms: NOW + seq,
    }
}

async fn sessions_are_owned_expire_and_never_interleave(s: &Storage) {
    let id = new_id("chat");
    s.sessions
        .create(&SessionRecord {
            id: id.clone(),
            owner: "alice".into(),
            model: "m".into(),
            system_prompt: Some("be brief".into()),
            created_at_ms: NOW,
            updated_at_ms: NOW,
            expires_at_ms: NOW + 1_000,
            turn_count: 0,
            image_bytes: 0,
        })
        .await
        .unwrap();
    assert!(s.sessions.get(&id, "alice", NOW).await.unwrap().is_some());
    assert!(s.sessions.get(&id, "mallory", NOW).await.unwrap().is_none());
    assert!(
        s.sessions
            .get(&id, "alice", NOW + 1_000)
            .await
            .unwrap()
            .is_none()
    );

    let turns = [turn(0, "user", None), turn(1, "model", Some("img_x"))];
    assert!(
        s.sessions
            .append(&id, 0, &turns, 10, NOW + 5, NOW + 9_000)
            .await
            .unwrap()
    );
    assert!(
        !s.sessions
            .append(&id, 0, &turns[..1], 0, NOW + 6, NOW + 9_000)
            .await
            .unwrap(),
        "a writer that read a stale history loses"
    );
    assert_eq!(
        s.sessions.turns(&id).await.unwrap(),
        turns.to_vec(),
        "byte for byte"
    );
    let session = s
        .sessions
        .get(&id, "alice", NOW + 5_000)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((session.turn_count, session.image_bytes), (2, 10));

    assert!(!s.sessions.delete(&id, "mallory").await.unwrap());
    assert_eq!(s.sessions.delete_expired(NOW + 9_000).await.unwrap(), 1);
    assert!(
        s.sessions.turns(&id).await.unwrap().is_empty(),
        "turns go with the session"
    );
}

async fn images_are_served_only_to_their_owner(s: &Storage) {
    let (first, second) = (new_id("img"), new_id("img"));
    s.images
        .put(
            &first,
            "alice",
            ImageFormat::Png,
            Bytes::from_static(b"one"),
        )
        .await
        .unwrap();
    s.images
        .put(
            &second,
            "alice",
            ImageFormat::Jpeg,
            Bytes::from_static(b"two!"),
        )
        .await
        .unwrap();
    assert_eq!(
        s.images.get(&first, "alice").await.unwrap().as_deref(),
        Some(&b"one"[..])
    );
    assert_eq!(s.images.get(&first, "mallory").await.unwrap(), None);
    assert_eq!(s.images.get("img_../../etc", "alice").await.unwrap(), None);
    assert_eq!(
        s.images.get_any_owner(&second).await.unwrap().as_deref(),
        Some(&b"two!"[..])
    );
    let listed = s.images.list("alice", 10).await.unwrap();
    let ids: HashSet<_> = listed.iter().map(|m| m.id.clone()).collect();
    assert_eq!(ids, HashSet::from([first, second.clone()]));
    let jpeg = listed.iter().find(|m| m.id == second).unwrap();
    assert_eq!((jpeg.mime.as_str(), jpeg.size_bytes), ("image/jpeg", 4));
    assert!(s.images.list("mallory", 10).await.unwrap().is_empty());
}

async fn usage_sums_by_day_and_model(s: &Storage) {
    let usage = Usage {
        input_tokens: 10,
        output_tokens: 1300,
        image_tokens: 1290,
        thought_tokens: 5,
        cost_usd: 0.039,
    };
    for (request, at) in [("req_a", NOW), ("req_a", NOW + 1), ("req_b", NOW + 2)] {
        let event = UsageEvent {
            key_id: "alice".into(),
            request_id: request.into(),
            model: "gemini-3.1-flash-image".into(),
            at_ms: at,
            images: 1,
            usage,
        };
        s.usage.record(&event).await.unwrap();
    }
    let rows = s
        .usage
        .by_day("alice", utc_day(NOW), utc_day(NOW))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!((row.requests, row.upstream_calls, row.images), (2, 3, 3));
    assert_eq!(
        (row.input_tokens, row.image_tokens, row.thought_tokens),
        (30, 3870, 15)
    );
    assert!((row.cost_usd - 0.117).abs() < 1e-9, "{}", row.cost_usd);
    assert!(
        s.usage
            .by_day("bob", utc_day(NOW), utc_day(NOW))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn idempotent_results_replay_until_they_expire(s: &Storage) {
    let result = |fingerprint: &str, created: i64| IdempotentResult {
        fingerprint: fingerprint.into(),
        response: StoredResponse {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: Bytes::from_static(b"{\"ok\":true}\x00\xff"),
        },
        created_at_ms: created,
        expires_at_ms: created + 1_000,
    };
    s.idempotency
        .put("alice", "k1", &result("f1", NOW), NOW)
        .await
        .unwrap();
    assert_eq!(
        s.idempotency.get("alice", "k1", NOW + 10).await.unwrap(),
        Some(result("f1", NOW))
    );
    assert_eq!(
        s.idempotency.get("bob", "k1", NOW + 10).await.unwrap(),
        None
    );
    assert_eq!(
        s.idempotency.get("alice", "k1", NOW + 1_000).await.unwrap(),
        None
    );
    let later = result("f2", NOW + 2_000);
    s.idempotency
        .put("alice", "k1", &later, NOW + 2_000)
        .await
        .unwrap();
    assert_eq!(
        s.idempotency.get("alice", "k1", NOW + 2_001).await.unwrap(),
        Some(later)
    );
}

async fn spend_is_reserved_within_the_limits_and_settled(s: &Storage) {
    use imagegate::auth::settings::SpendLimits;
    use imagegate::auth::{KeyTemplate, issue_with};
    use imagegate::store::keys::SpendPeriod;
    let template = KeyTemplate {
        tier: "free".into(),
        limits: SpendLimits {
            daily_micro: Some(100_000),
            monthly_micro: Some(150_000),
        },
        ..KeyTemplate::default()
    };
    let key = issue_with(s.keys.as_ref(), template, NOW)
        .await
        .unwrap()
        .record;
    let id = key.key_id.as_str();
    let day1 = SpendPeriod {
        day: "2026-03-01".into(),
        month: "2026-03".into(),
    };
    assert!(s.keys.reserve(id, &day1, 40_000).await.unwrap());
    assert!(s.keys.reserve(id, &day1, 40_000).await.unwrap());
    assert!(
        !s.keys.reserve(id, &day1, 40_000).await.unwrap(),
        "over the day's 0.10"
    );
    s.keys.settle(id, &day1, -30_000).await.unwrap();
    assert!(
        s.keys.reserve(id, &day1, 40_000).await.unwrap(),
        "settled to less"
    );
    let spend = s.keys.spend(id, &day1).await.unwrap().unwrap();
    assert_eq!((spend.day_micro, spend.month_micro), (90_000, 90_000));
    // A new day starts at zero; the month goes on and is the tighter limit now.
    let day2 = SpendPeriod {
        day: "2026-03-02".into(),
        month: "2026-03".into(),
    };
    assert!(s.keys.reserve(id, &day2, 60_000).await.unwrap());
    assert!(
        !s.keys.reserve(id, &day2, 10_000).await.unwrap(),
        "over the month's 0.15"
    );
    let spend = s.keys.spend(id, &day2).await.unwrap().unwrap();
    assert_eq!((spend.day_micro, spend.month_micro), (60_000, 150_000));
    assert_eq!(s.keys.spend("key_missing", &day2).await.unwrap(), None);
}

/// Rotation (issue 15): the successor takes over what the old key spent, and the old
/// key's row takes no more reservations, so both credentials spend one budget.
async fn a_rotated_key_hands_its_spend_to_its_successor(s: &Storage) {
    use imagegate::auth::settings::SpendLimits;
    use imagegate::auth::{KeyTemplate, issue_with};
    use imagegate::store::keys::SpendPeriod;
    let template = KeyTemplate {
        tier: "free".into(),
        limits: SpendLimits {
            daily_micro: Some(100_000),
            monthly_micro: None,
        },
        ..KeyTemplate::default()
    };
    let keys = s.keys.as_ref();
    let old = issue_with(keys, template, NOW).await.unwrap().record;
    let day = SpendPeriod {
        day: "2026-03-01".into(),
        month: "2026-03".into(),
    };
    assert!(keys.reserve(&old.key_id, &day, 60_000).await.unwrap());
    let new = issue_with(keys, KeyTemplate::of(&old), NOW)
        .await
        .unwrap()
        .record;
    assert!(
        keys.hand_over(&old.key_id, &new.key_id, NOW + 1_000)
            .await
            .unwrap()
    );
    assert!(
        !keys
            .hand_over(&old.key_id, &new.key_id, NOW + 1_000)
            .await
            .unwrap(),
        "a key is rotated once"
    );
    let rotated = keys.get(&old.key_id).await.unwrap().unwrap();
    assert_eq!(rotated.rotated_to.as_deref(), Some(new.key_id.as_str()));
    assert_eq!(rotated.grace_until_ms, Some(NOW + 1_000));
    assert!(
        !keys.reserve(&old.key_id, &day, 1).await.unwrap(),
        "the old row takes no more reservations"
    );
    let carried = keys.spend(&new.key_id, &day).await.unwrap().unwrap();
    assert_eq!((carried.day_micro, carried.month_micro), (60_000, 60_000));
    assert!(!keys.reserve(&new.key_id, &day, 50_000).await.unwrap());
    assert!(keys.reserve(&new.key_id, &day, 40_000).await.unwrap());
}

async fn the_storage_story(storage: &Storage) {
    keys_are_found_by_digest_until_revoked(storage).await;
    spend_is_reserved_within_the_limits_and_settled(storage).await;
    sessions_are_owned_expire_and_never_interleave(storage).await;
    images_are_served_only_to_their_owner(storage).await;
    usage_sums_by_day_and_model(storage).await;
    idempotent_results_replay_until_they_expire(storage).await;
    queue::the_queue_leases_fences_cancels_and_delivers(storage).await;
    queue::concurrent_workers_never_claim_the_same_request(storage).await;
    queue::chat_messages_wait_for_the_earlier_ones_of_their_session(storage).await;
    a_rotated_key_hands_its_spend_to_its_successor(storage).await;
    queue::a_deferred_request_is_not_claimed_before_its_time(storage).await;
    storage.database.ping().await.unwrap();
    assert_eq!(
        storage.database.schema_version().await.unwrap(),
        SCHEMA_VERSION
    );
}

fn config_in(dir: &tempfile::TempDir) -> Config {
    Config {
        data_dir: dir.path().to_owned(),
        ..Config::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storage_story_holds_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    // Named by URL here; every other test uses the default file in the data directory.
    let file = dir.path().join("state.db");
    let mut config = config_in(&dir);
    config.database_url = Some(ServiceUrl::new(format!("sqlite://{}", file.display())));
    let storage = Storage::open(&config).await.unwrap();
    assert!(
        storage.description.starts_with("SQLite"),
        "{}",
        storage.description
    );
    assert!(file.exists(), "the database is the file the URL names");
    the_storage_story(&storage).await;
}

#[ignore = "needs PostgreSQL"]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_storage_story_holds_on_postgres() {
    let schema = PgSchema::create().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = config_in(&dir);
    config.database_url = Some(schema.database_url());
    let storage = Storage::open(&config).await.unwrap();
    assert!(
        storage.description.starts_with("PostgreSQL"),
        "{}",
        storage.description
    );
    the_storage_story(&storage).await;
    // Opening again (a second instance, or `imagegate migrate`) applies nothing twice.
    let again = Storage::open(&config).await.unwrap();
    assert_eq!(
        again.database.schema_version().await.unwrap(),
        SCHEMA_VERSION
    );
}

async fn blobs_round_trip(blobs: &ObjectBlobs) {
    let key = format!("images/{}", new_id("img"));
    assert_eq!(blobs.get(&key).await.unwrap(), None);
    let bytes = Bytes::from((0..=255u8).cycle().take(300_000).collect::<Vec<_>>());
    blobs.put(&key, bytes.clone()).await.unwrap();
    assert_eq!(blobs.get(&key).await.unwrap(), Some(bytes));
    blobs.delete(&key).await.unwrap();
    blobs.delete(&key).await.unwrap();
    assert_eq!(blobs.get(&key).await.unwrap(), None);
    blobs.probe().await.unwrap();
    assert!(blobs.put("../escape", Bytes::new()).await.is_err());
}

#[ignore = "needs moto (tests/requirements.txt)"]
#[tokio::test]
async fn image_and_request_bytes_round_trip_in_files_and_in_s3() {
    let dir = tempfile::tempdir().unwrap();
    blobs_round_trip(&ObjectBlobs::local(dir.path()).unwrap()).await;
    let bucket = S3Bucket::create().await;
    let mut config = config_in(&dir);
    bucket.configure(&mut config);
    let s3 = ObjectBlobs::s3(&bucket.url, &config.object_store).unwrap();
    blobs_round_trip(&s3).await;
    let prefixed =
        ObjectBlobs::s3(&format!("{}/deploy-a", bucket.url), &config.object_store).unwrap();
    prefixed
        .put("requests/r.body", Bytes::from_static(b"body"))
        .await
        .unwrap();
    assert_eq!(
        s3.get("deploy-a/requests/r.body").await.unwrap().as_deref(),
        Some(&b"body"[..])
    );
    assert_eq!(
        s3.get("requests/r.body").await.unwrap(),
        None,
        "the prefix separates deployments"
    );
}
