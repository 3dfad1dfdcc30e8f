//! The child's end: its exit closes the connection; shutdown closes stdin,
//! then signals the whole group; dropping the last handle kills it.

use super::*;

#[tokio::test]
async fn child_exit_fails_requests_in_flight_and_closes() {
    let (connection, _, _events) = start("normal").await;
    let pid = connection.pid().unwrap();
    let error = within(connection.request("exit", None, None))
        .await
        .unwrap_err();
    assert_eq!(
        error,
        UpstreamError::Lost("process exited with status 3".into())
    );
    within(connection.closed()).await;
    assert_eq!(
        connection.close_reason().as_deref(),
        Some("process exited with status 3")
    );
    // Later requests fail at once.
    let later = within(connection.request("echo", None, None))
        .await
        .unwrap_err();
    assert_eq!(
        later,
        UpstreamError::Connect("process exited with status 3".into())
    );
    assert!(matches!(
        within(connection.notify("x", None)).await,
        Err(UpstreamError::Connect(_))
    ));
    wait_gone(pid).await;
    within(connection.shutdown()).await;
}

#[tokio::test]
async fn shutdown_of_a_stubborn_child_kills_its_whole_group() {
    let (connection, _, _events) = start("stubborn").await;
    let pids = pids(&connection).await;
    assert_eq!(pids.len(), 2, "leader and grandchild");
    assert!(pids.iter().all(|&pid| !is_gone(pid)));
    let in_flight = {
        let connection = connection.clone();
        tokio::spawn(async move { connection.request("hang", None, None).await })
    };
    // Ignores stdin EOF and SIGTERM: only SIGKILL ends it.
    within(connection.shutdown()).await;
    for pid in pids {
        wait_gone(pid).await;
    }
    // Lost if it was sent before the shutdown, never sent otherwise.
    let reason = "connection shut down".to_owned();
    let result = within(in_flight).await.unwrap();
    assert!(
        result == Err(UpstreamError::Lost(reason.clone()))
            || result == Err(UpstreamError::Connect(reason)),
        "{result:?}"
    );
    within(connection.closed()).await;
    // Idempotent.
    within(connection.shutdown()).await;
}

#[tokio::test]
async fn shutdown_of_a_polite_child_closes_stdin() {
    let (connection, _, _events) = start("normal").await;
    let pid = connection.pid().unwrap();
    within(connection.shutdown()).await;
    wait_gone(pid).await;
    assert_eq!(
        connection.close_reason().as_deref(),
        Some("connection shut down")
    );
}

#[tokio::test]
async fn dropping_the_last_handle_kills_the_group() {
    let (connection, _, _events) = start("stubborn").await;
    let pids = pids(&connection).await;
    let clone = connection.clone();
    drop(connection);
    assert!(
        pids.iter().all(|&pid| !is_gone(pid)),
        "a clone still holds it"
    );
    drop(clone);
    for pid in pids {
        wait_gone(pid).await;
    }
}
