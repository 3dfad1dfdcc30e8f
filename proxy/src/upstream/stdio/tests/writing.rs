//! What goes to the child's stdin: the cancellation of a dropped request,
//! and a bounded queue when the child stops reading.

use serde_json::json;

use super::*;

#[tokio::test]
async fn a_dropped_request_is_cancelled_upstream() {
    let (connection, _, _events) = start("normal").await;
    // initialize was request 1, so this one is 2 upstream.
    let hang = tokio::time::timeout(
        Duration::from_millis(300),
        connection.request("hang", None, None),
    )
    .await;
    assert!(hang.is_err());
    let seen = within(connection.request("cancelled", None, None))
        .await
        .unwrap();
    let cancelled = seen["cancelled"].as_array().unwrap();
    assert_eq!(cancelled.len(), 1);
    assert_eq!(cancelled[0]["requestId"], json!(2));
    assert!(cancelled[0]["reason"].is_string());
    within(connection.shutdown()).await;
}

/// A child in this process that is never signalled.
#[derive(Debug)]
struct Unsignalled;

impl ChildSignals for Unsignalled {
    fn id(&self) -> Option<u32> {
        None
    }
    fn terminate(&self) -> bool {
        false
    }
    fn kill(&self) -> bool {
        false
    }
    fn sweep(&self) {}
}

#[tokio::test(start_paused = true)]
async fn a_child_that_stops_reading_stdin_holds_at_most_the_queue() {
    // Its stdin is a one-byte pipe nobody reads; its stdout stays silent.
    let (stdin, _unread) = tokio::io::duplex(1);
    let (_silent, stdout) = tokio::io::duplex(1);
    let (_quiet, stderr) = tokio::io::duplex(1);
    let child = SpawnedChild {
        stdin: Box::new(stdin),
        stdout: Box::new(stdout),
        stderr: Box::new(stderr),
        exit: Box::pin(std::future::pending()),
        signals: Arc::new(Unsignalled),
    };
    let (events, _received) = mpsc::unbounded_channel();
    let (connection, _supervision, _exit) = StdioConnection::start("deaf", child, events);
    // A message holds its place until written: the one stuck in the
    // pipe too.
    let calls: Vec<_> = (0..OUTGOING_QUEUE)
        .map(|_| {
            let connection = connection.clone();
            tokio::spawn(async move { connection.request("hang", None, None).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        connection.inner.room.available_permits(),
        0,
        "the queue is full"
    );
    assert_eq!(connection.inner.pending.len(), OUTGOING_QUEUE);
    let late = tokio::time::timeout(
        Duration::from_secs(1),
        connection.request("hang", None, None),
    )
    .await;
    assert!(
        late.is_err(),
        "a request that finds it full waits, up to its deadline"
    );
    assert_eq!(
        connection.inner.pending.len(),
        OUTGOING_QUEUE,
        "the request given up while waiting was never registered"
    );
    assert!(calls.iter().all(|call| !call.is_finished()));
}
