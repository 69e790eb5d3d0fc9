//! OBS faults the real OBS cannot easily show, against the small v5 server of
//! `support::obs_server`: OBS going away mid-request, a slow answer, an OBS that never answers
//! (alerts must not wait for it), events ahead of the response, overlapping timed switches run
//! by the worker, and OBS not running at all.

use std::time::Duration;

use serde_json::{Value, json};
use tikrelay::obs::{ObsClient, ObsCommand, ObsError, ObsWorkerConfig, spawn_worker};
use tokio::net::TcpListener;

use crate::support::obs_server::{Behaviour, FakeObs};
use crate::support::{InProcess, WAIT, get_json, http};

const PASSWORD: &str = "pw";

/// Polls `done` every 10 ms, up to [`WAIT`].
async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "never happened: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn worker_config(fake: &FakeObs) -> ObsWorkerConfig {
    ObsWorkerConfig {
        initial_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..ObsWorkerConfig::new(fake.settings(Some(PASSWORD), WAIT))
    }
}

#[tokio::test]
async fn obs_going_away_mid_request_fails_the_request_and_the_worker_reidentifies_and_retries() {
    let fake = FakeObs::start(
        PASSWORD,
        Behaviour {
            drop_on: Some("SetCurrentProgramScene".into()),
            ..Behaviour::default()
        },
    )
    .await;
    let mut client = ObsClient::connect(&fake.settings(Some(PASSWORD), WAIT), 0)
        .await
        .unwrap();
    let err = client
        .request("SetCurrentProgramScene", json!({"sceneName": "Boss"}))
        .await
        .unwrap_err();
    assert!(matches!(err, ObsError::ConnectionLost(_)), "{err:?}");
    assert!(
        err.to_string().contains("connection to OBS was lost"),
        "{err}"
    );
    assert!(client.is_closed());

    // The worker: the dropped switch runs again on a new, identified connection.
    fake.state.behaviour_drop_on("SetCurrentProgramScene");
    let obs = spawn_worker(worker_config(&fake));
    assert!(obs.send(
        ObsCommand::Scene {
            scene: "Boss".into(),
            hold: None
        },
        "t"
    ));
    eventually("the switch after the reconnect", || {
        fake.switches() == ["Boss"]
    })
    .await;
    let log = fake.log();
    let identifies: Vec<usize> = log.iter().filter(|e| e.1 == 1).map(|e| e.0).collect();
    let sets: Vec<usize> = log
        .iter()
        .filter(|e| e.2 == "SetCurrentProgramScene")
        .map(|e| e.0)
        .collect();
    assert_eq!(
        sets.len(),
        3,
        "the direct request, the dropped try, the retry: {log:?}"
    );
    assert_eq!(
        identifies.last(),
        sets.last(),
        "the retry ran on a freshly identified connection: {log:?}"
    );
    assert!(identifies.len() >= 3, "{log:?}");
}

#[tokio::test]
async fn a_switch_whose_answer_was_lost_still_returns_to_the_scene_before_it() {
    // OBS switches, then the connection breaks before the answer: the retry switches again,
    // and must not take "Boss" (now live) for the scene to return to.
    let fake = FakeObs::start(
        PASSWORD,
        Behaviour {
            drop_after: Some("SetCurrentProgramScene".into()),
            ..Behaviour::default()
        },
    )
    .await;
    let obs = spawn_worker(worker_config(&fake));
    assert!(obs.send(
        ObsCommand::Scene {
            scene: "Boss".into(),
            hold: Some(Duration::from_millis(300)),
        },
        "t"
    ));
    eventually("the return", || fake.switches().len() == 3).await;
    assert_eq!(fake.switches(), ["Boss", "Boss", "Main"]);
}

#[tokio::test]
async fn a_slow_answer_times_out_and_is_not_taken_for_the_next_one() {
    let fake = FakeObs::start(
        PASSWORD,
        Behaviour {
            slow: Some(("GetVersion".into(), Duration::from_millis(600))),
            ..Behaviour::default()
        },
    )
    .await;
    let mut client = ObsClient::connect(
        &fake.settings(Some(PASSWORD), Duration::from_millis(200)),
        0,
    )
    .await
    .unwrap();
    let err = client.request("GetVersion", Value::Null).await.unwrap_err();
    assert!(matches!(err, ObsError::Timeout { .. }), "{err:?}");
    assert!(err.to_string().contains("frozen or overloaded"), "{err}");
    // The late GetVersion answer arrives while this request waits; it must not be its answer.
    let mut answer = Value::Null;
    for _ in 0..50 {
        match client.request("GetCurrentProgramScene", Value::Null).await {
            Ok(a) => {
                answer = a;
                break;
            }
            // The server answers in order, so this one may queue behind the slow one.
            Err(ObsError::Timeout { .. }) => continue,
            Err(e) => panic!("{e}"),
        }
    }
    assert_eq!(answer, json!({"currentProgramSceneName": "Main"}));
}

#[tokio::test]
async fn an_obs_that_never_answers_does_not_delay_alerts() {
    let fake = FakeObs::start(
        PASSWORD,
        Behaviour {
            never_answer: Some("SetCurrentProgramScene".into()),
            ..Behaviour::default()
        },
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("t.toml");
    std::fs::write(
        &path,
        format!(
            "[obs]\nport = {}\npassword = \"{PASSWORD}\"\n\
             [[trigger]]\non = \"follow\"\nalert = {{ title = \"{{{{name}}}}\" }}\nobs = {{ scene = \"Boss\", for_ms = 5000 }}\n",
            fake.addr.port()
        ),
    )
    .unwrap();
    let relay = InProcess::start(&["--config", path.to_str().unwrap()]).await;
    for name in ["A", "B"] {
        let r = http()
            .post(relay.url("/api/test"))
            .json(&json!({"type": "follow", "user": {"nickname": name}}))
            .send()
            .await
            .unwrap();
        assert!(r.status().is_success());
    }
    // OBS holds the first switch forever, yet both alerts are queued.
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let q = get_json(&relay.url("/api/queues")).await;
        let main = &q["queues"]["main"];
        let titles: Vec<&str> = main["next"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a["title"].as_str())
            .collect();
        if titles == ["A", "B"] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "alerts not queued: {q}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eventually("OBS received the switch", || {
        fake.log().iter().any(|e| e.2 == "SetCurrentProgramScene")
    })
    .await;
    assert!(fake.switches().len() <= 1);
}

#[tokio::test]
async fn events_that_come_before_the_response_are_routed_as_events() {
    let fake = FakeObs::start(
        PASSWORD,
        Behaviour {
            event_first: true,
            ..Behaviour::default()
        },
    )
    .await;
    let mut client = ObsClient::connect(&fake.settings(Some(PASSWORD), WAIT), 4)
        .await
        .unwrap();
    let mut events = client.events();
    let answer = client
        .request("SetCurrentProgramScene", json!({"sceneName": "Party"}))
        .await
        .unwrap();
    assert_eq!(
        answer,
        Value::Null,
        "SetCurrentProgramScene has no responseData"
    );
    let ev = events.try_recv().expect("the event came first");
    assert_eq!(ev.event_type, "CurrentProgramSceneChanged");
    assert_eq!(ev.data["sceneName"], "Party");
    let scene = client
        .request("GetCurrentProgramScene", Value::Null)
        .await
        .unwrap();
    assert_eq!(scene["currentProgramSceneName"], "Party");
}

#[tokio::test]
async fn overlapping_switches_to_one_scene_return_once_to_the_scene_before_the_first() {
    let fake = FakeObs::start(PASSWORD, Behaviour::default()).await;
    let obs = spawn_worker(worker_config(&fake));
    let boss = |ms| ObsCommand::Scene {
        scene: "Boss".into(),
        hold: Some(Duration::from_millis(ms)),
    };
    assert!(obs.send(boss(300), "a"));
    assert!(obs.send(boss(600), "b"));
    assert!(obs.send(
        ObsCommand::Scene {
            scene: "Nope".into(),
            hold: None
        },
        "c"
    ));
    eventually("the return", || fake.switches().len() == 3).await;
    assert_eq!(fake.switches(), ["Boss", "Boss", "Main"]);
}

#[tokio::test]
async fn obs_not_running_is_said_in_words() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let settings = tikrelay::obs::ObsSettings {
        port,
        ..Default::default()
    };
    let err = ObsClient::connect(&settings, 0).await.unwrap_err();
    assert!(matches!(err, ObsError::NotRunning { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("OBS is not running")
            && msg.contains("Enable WebSocket server")
            && msg.contains(&port.to_string()),
        "{msg}"
    );
    // Something that is not OBS on the port says so too.
    let not_obs = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = not_obs.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        while let Ok((mut s, _)) = not_obs.accept().await {
            let _ = s
                .write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
                .await;
        }
    });
    let err = ObsClient::connect(
        &tikrelay::obs::ObsSettings {
            port,
            ..Default::default()
        },
        0,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, ObsError::NotObs { .. }), "{err:?}");
    assert!(err.to_string().contains("404"), "{err}");
}
