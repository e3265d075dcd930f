//! The async queue's half of the storage story: claims in order under leases, fencing of
//! a dead worker's attempt, cancel, webhook deliveries and their retries, and workers
//! that claim at once without ever sharing a request.

use std::collections::HashSet;

use imagegate::ids::new_id;
use imagegate::store::Storage;
use imagegate::store::requests::{Cancel, NewDelivery, RequestRecord};

use super::NOW;

fn queued(created_at_ms: i64) -> RequestRecord {
    let id = new_id("req");
    RequestRecord {
        body_ref: id.clone(),
        id,
        owner: "alice".into(),
        tier: "free".into(),
        path: "/generate-image".into(),
        content_type: "application/json".into(),
        webhook_url: Some("https://example.com/hook".into()),
        status: "queued".into(),
        attempts: 0,
        result: None,
        error: None,
        created_at_ms,
        finished_at_ms: None,
    }
}

fn delivery() -> NewDelivery {
    NewDelivery {
        id: new_id("msg"),
        url: "https://example.com/hook".into(),
        payload: "{}".into(),
    }
}

pub async fn the_queue_leases_fences_cancels_and_delivers(s: &Storage) {
    let q = &s.requests;
    let (first, second, third) = (queued(NOW), queued(NOW + 1), queued(NOW + 2));
    for r in [&first, &second, &third] {
        q.insert(r).await.unwrap();
    }
    assert_eq!(q.queue_depth().await.unwrap(), 3);
    let claimed = q.claim(NOW + 10, 1_000).await.unwrap().unwrap();
    assert_eq!(
        (claimed.id.as_str(), claimed.attempts),
        (first.id.as_str(), 1),
        "oldest first"
    );
    assert_eq!(
        q.claim(NOW + 10, 1_000).await.unwrap().unwrap().id,
        second.id
    );
    assert_eq!(
        q.cancel(&third.id, "alice", NOW + 11, Some(&delivery()))
            .await
            .unwrap(),
        Cancel::Canceled
    );
    assert_eq!(
        q.cancel(&first.id, "alice", NOW + 11, None).await.unwrap(),
        Cancel::TooLate("running".into())
    );
    assert_eq!(
        q.cancel(&first.id, "mallory", NOW + 11, None)
            .await
            .unwrap(),
        Cancel::NotFound
    );
    assert!(
        q.claim(NOW + 20, 1_000).await.unwrap().is_none(),
        "nothing queued, no lease expired"
    );

    assert!(q.renew(&first.id, 1, NOW + 5_000).await.unwrap());
    // The second request's worker died: its lease runs out and the request is taken again.
    let retaken = q.claim(NOW + 2_000, 1_000).await.unwrap().unwrap();
    assert_eq!(
        (retaken.id.as_str(), retaken.attempts),
        (second.id.as_str(), 2)
    );
    let webhook = delivery();
    let done = |attempt| {
        q.finish(
            &second.id,
            attempt,
            "succeeded",
            Some("{}"),
            None,
            NOW + 2_100,
            Some(&webhook),
        )
    };
    assert!(
        !done(1).await.unwrap(),
        "the dead worker's attempt is fenced off"
    );
    assert!(done(2).await.unwrap());
    let finished = q.get(&second.id, "alice").await.unwrap().unwrap();
    assert_eq!(
        (finished.status.as_str(), finished.finished_at_ms),
        ("succeeded", Some(NOW + 2_100))
    );
    assert_eq!(q.get(&second.id, "mallory").await.unwrap(), None);

    assert_eq!(q.pending_deliveries().await.unwrap(), 2);
    let sent = q
        .claim_delivery(NOW + 3_000, 10_000)
        .await
        .unwrap()
        .unwrap();
    let other = q
        .claim_delivery(NOW + 3_000, 10_000)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(sent.id, other.id);
    assert!(
        q.claim_delivery(NOW + 3_000, 10_000)
            .await
            .unwrap()
            .is_none(),
        "both are leased"
    );
    q.delivery_attempted(&sent.id, Some(200), "delivered", None)
        .await
        .unwrap();
    q.delivery_attempted(&other.id, Some(500), "pending", Some(NOW + 60_000))
        .await
        .unwrap();
    assert_eq!(q.pending_deliveries().await.unwrap(), 1);
    assert!(
        q.claim_delivery(NOW + 59_999, 10_000)
            .await
            .unwrap()
            .is_none(),
        "not due yet"
    );
    assert_eq!(
        q.claim_delivery(NOW + 60_000, 10_000)
            .await
            .unwrap()
            .unwrap()
            .attempts,
        2
    );

    let secret = q
        .webhook_secret("alice", &|| "whsec_first".into(), NOW)
        .await
        .unwrap();
    let again = q
        .webhook_secret("alice", &|| "whsec_second".into(), NOW)
        .await
        .unwrap();
    assert_eq!(
        (secret.as_str(), again.as_str()),
        ("whsec_first", "whsec_first")
    );
}

pub async fn concurrent_workers_never_claim_the_same_request(s: &Storage) {
    let mut ids = HashSet::new();
    for i in 0..12 {
        let r = queued(NOW + 100_000 + i);
        ids.insert(r.id.clone());
        s.requests.insert(&r).await.unwrap();
    }
    let workers = (0..4).map(|_| {
        let requests = s.requests.clone();
        tokio::spawn(async move {
            let mut mine = Vec::new();
            while let Some(r) = requests.claim(NOW + 100_000, 3_600_000).await.unwrap() {
                mine.push(r.id);
            }
            mine
        })
    });
    let mut claimed = Vec::new();
    for worker in workers {
        claimed.extend(worker.await.unwrap());
    }
    let distinct: HashSet<_> = claimed.iter().cloned().collect();
    assert_eq!(
        claimed.len(),
        distinct.len(),
        "a request was claimed twice: {claimed:?}"
    );
    assert!(ids.is_subset(&distinct), "every request was claimed");
}

/// Chat messages (issue 17): each takes the next place of its session; a worker claims a
/// message only once every earlier one has finished, a synchronous message's place
/// (held, never claimed) holds the session until it is given up or its hold lapses, and
/// messages accepted at once all get places of their own.
pub async fn chat_messages_wait_for_the_earlier_ones_of_their_session(s: &Storage) {
    let q = &s.requests;
    // After the leases of the concurrent-workers step, which run for an hour.
    let t = NOW + 200_000;
    let session = new_id("chat");
    let message = |at| RequestRecord {
        path: "/chat/{session_id}/message".into(),
        ..queued(at)
    };
    let (a, b, c) = (message(t), message(t + 1), message(t + 2));
    q.insert_message(&a, &session, None).await.unwrap();
    q.insert_message(&b, &session, Some(t + 1_000))
        .await
        .unwrap();
    q.insert_message(&c, &session, None).await.unwrap();
    let other = queued(t + 3);
    q.insert(&other).await.unwrap();
    assert_eq!(q.pending_messages(&session, t).await.unwrap(), 3);
    assert_eq!(q.earlier_messages(&a.id, t).await.unwrap(), 0);
    assert_eq!(q.earlier_messages(&b.id, t).await.unwrap(), 1);
    assert_eq!(q.earlier_messages(&c.id, t).await.unwrap(), 2);

    assert_eq!(q.claim(t + 10, 60_000).await.unwrap().unwrap().id, a.id);
    assert_eq!(
        q.claim(t + 10, 60_000).await.unwrap().unwrap().id,
        other.id,
        "other work is not held up by the session"
    );
    assert!(q.claim(t + 10, 60_000).await.unwrap().is_none());
    assert!(
        q.finish(&a.id, 1, "succeeded", Some("{}"), None, t + 20, None)
            .await
            .unwrap()
    );
    assert_eq!(q.earlier_messages(&b.id, t + 20).await.unwrap(), 0);
    assert!(
        q.claim(t + 20, 60_000).await.unwrap().is_none(),
        "the synchronous message holds its place"
    );
    assert_eq!(
        q.get(&b.id, "alice").await.unwrap(),
        None,
        "not an async request"
    );
    assert_eq!(
        q.cancel(&b.id, "alice", t + 20, None).await.unwrap(),
        Cancel::NotFound
    );
    assert!(q.hold_message(&b.id, t + 2_000).await.unwrap());
    assert!(
        !q.hold_message(&c.id, t + 2_000).await.unwrap(),
        "only a sync place is held"
    );
    q.leave_message(&b.id).await.unwrap();
    q.leave_message(&c.id).await.unwrap();
    assert_eq!(q.claim(t + 30, 60_000).await.unwrap().unwrap().id, c.id);

    // A hold whose process died lapses and no longer holds the session up.
    let (d, e) = (message(t + 40), message(t + 41));
    q.insert_message(&d, &session, Some(t + 3_000))
        .await
        .unwrap();
    q.insert_message(&e, &session, None).await.unwrap();
    assert!(
        q.finish(&c.id, 1, "failed", None, Some("{}"), t + 50, None)
            .await
            .unwrap()
    );
    assert!(q.claim(t + 2_500, 60_000).await.unwrap().is_none());
    assert_eq!(q.pending_messages(&session, t + 3_001).await.unwrap(), 1);
    assert_eq!(q.claim(t + 3_001, 60_000).await.unwrap().unwrap().id, e.id);

    // Eight messages accepted at once take eight distinct places.
    let crowded = new_id("chat");
    let inserts = (0..8).map(|i| {
        let (requests, crowded) = (s.requests.clone(), crowded.clone());
        let r = message(t + 100 + i);
        tokio::spawn(async move {
            requests.insert_message(&r, &crowded, None).await.unwrap();
            r.id
        })
    });
    let mut ids = Vec::new();
    for insert in inserts {
        ids.push(insert.await.unwrap());
    }
    let mut places = Vec::new();
    for id in &ids {
        places.push(q.earlier_messages(id, t + 200).await.unwrap());
    }
    places.sort_unstable();
    assert_eq!(places, (0..8).collect::<Vec<i64>>());

    // Leave the queue as found: nothing of this step claimable later.
    for r in [&other, &e] {
        assert!(
            q.finish(&r.id, 1, "succeeded", Some("{}"), None, t + 300, None)
                .await
                .unwrap()
        );
    }
    for id in &ids {
        assert_eq!(
            q.cancel(id, "alice", t + 300, None).await.unwrap(),
            Cancel::Canceled
        );
    }
}

/// A worker whose request's key has no free slot hands it back for a moment (`defer`):
/// not claimable before then, and the attempt it made is not counted.
pub async fn a_deferred_request_is_not_claimed_before_its_time(s: &Storage) {
    let q = &s.requests;
    // The oldest row of all, so it is the one claimed whenever it can be.
    let r = queued(NOW - 1_000_000);
    q.insert(&r).await.unwrap();
    let at = NOW + 1_000_000;
    let claimed = q.claim(at, 60_000).await.unwrap().unwrap();
    assert_eq!((claimed.id.as_str(), claimed.attempts), (r.id.as_str(), 1));
    assert!(q.defer(&r.id, 1, at + 100).await.unwrap());
    assert!(
        !q.defer(&r.id, 1, at + 100).await.unwrap(),
        "only a held attempt"
    );
    assert_eq!(
        q.get(&r.id, "alice").await.unwrap().unwrap().status,
        "queued"
    );
    let early = q.claim(at + 50, 60_000).await.unwrap();
    assert!(early.is_none_or(|e| e.id != r.id), "not before its time");
    let later = q.claim(at + 100, 60_000).await.unwrap().unwrap();
    assert_eq!((later.id.as_str(), later.attempts), (r.id.as_str(), 1));
    assert!(
        q.finish(&r.id, 1, "succeeded", Some("{}"), None, at + 200, None)
            .await
            .unwrap()
    );
}
