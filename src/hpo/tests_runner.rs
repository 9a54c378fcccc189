//! The coordinator without processes: test code plays the workers (claims tickets, writes
//! results), and "kills" the coordinator by dropping it between steps and tearing the
//! journal's last line; a resumed study must ask the same points as one never interrupted.

use super::coordinator::Coordinator;
use super::files::{write_json, Outcome, StudyDir};
use super::functions::TestFunction::Branin;
use super::journal::{asked, read, StudyLog, TrialStatus};
use super::study::StudyConfig;

fn study(mode: &str) -> StudyConfig {
    StudyConfig::from_yaml(
        &format!(
            "experiment: mnist_snn_ffnn_rate\n\
             space:\n  optimizer.lr: {{type: float, low: 1.0e-4, high: 1.0e-2, log: true}}\n  \
             model.neuron.beta: {{type: float, low: 0.5, high: 0.99}}\n\
             budget: {{trials: 14}}\nsampler: {{kind: tpe, startup: 4}}\n\
             dispatch: {{mode: {mode}}}\nworkers: 3\nseed: 5\n"
        ),
        std::path::Path::new("t.yaml"),
    )
    .unwrap()
}

/// Plays the workers: claims every queued ticket and finishes it with a value from Branin.
fn work_all(dir: &StudyDir, log: &StudyLog) {
    while let Some(ticket) = dir.claim().unwrap() {
        let unit = &log.trials[ticket.trial].unit;
        dir.write_beat(Some(ticket.trial)).unwrap();
        let outcome = Outcome {
            trial: ticket.trial,
            status: "completed".into(),
            value: Some(-Branin.at_unit(unit)),
            constraints: vec![],
            epochs: 1,
            error: None,
        };
        write_json(&dir.done(ticket.trial), &outcome).unwrap();
    }
}

/// Runs the study to the end, dropping the coordinator after each step listed in `kills`
/// (and tearing the journal's last line then); returns every asked point by id.
fn drive(root: &std::path::Path, mode: &str, kills: &[usize]) -> Vec<Vec<f64>> {
    let store = super::tests::store();
    let dir = StudyDir::at(root);
    let cfg = study(mode);
    let mut c = Coordinator::open(&store, dir.clone(), "t", &cfg).unwrap();
    for step in 0.. {
        let over = c.step().unwrap();
        if over {
            break;
        }
        work_all(&dir, c.log());
        if kills.contains(&step) {
            drop(c);
            let path = dir.journal_path();
            let mut text = std::fs::read(&path).unwrap();
            text.extend_from_slice(b"{\"event\":\"tell\",\"tri");
            std::fs::write(&path, text).unwrap();
            c = Coordinator::open(&store, dir.clone(), "t", &cfg).unwrap();
        }
        assert!(step < 200, "the study does not end");
    }
    let events = read(&dir.journal_path()).unwrap();
    let asked = asked(&events);
    assert_eq!(
        asked,
        (0..14).collect::<Vec<_>>(),
        "every id asked once, in order"
    );
    let log = StudyLog::read(&dir.journal_path()).unwrap();
    assert_eq!(log.count(TrialStatus::Completed), 14);
    log.trials.iter().map(|t| t.unit.clone()).collect()
}

#[test]
fn a_resumed_study_asks_the_same_points_as_one_never_interrupted() {
    for mode in ["synchronous", "asynchronous", "flexible"] {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let straight = drive(a.path(), mode, &[]);
        let killed = drive(b.path(), mode, &[0, 1, 3, 4, 6]);
        assert_eq!(straight, killed, "{mode}");
    }
}

#[test]
fn a_study_of_the_same_name_with_another_config_is_refused() {
    let store = super::tests::store();
    let root = tempfile::tempdir().unwrap();
    let dir = StudyDir::at(root.path());
    Coordinator::open(&store, dir.clone(), "t", &study("flexible")).unwrap();
    let err = Coordinator::open(&store, dir, "t", &study("synchronous"))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("another configuration"), "{err}");
}

#[test]
fn run_directories_inside_a_study_are_recognised() {
    let root = tempfile::tempdir().unwrap();
    drive(root.path(), "asynchronous", &[]);
    let trial = root
        .path()
        .join("trials/t0003/mnist_snn_ffnn_rate/v/seed_0");
    assert!(super::files::in_study(&trial));
    let other = tempfile::tempdir().unwrap();
    assert!(!super::files::in_study(
        &other.path().join("elsewhere/seed_0")
    ));
}

#[test]
fn a_torn_last_line_is_skipped_and_a_bad_line_elsewhere_names_its_number() {
    let root = tempfile::tempdir().unwrap();
    drive(root.path(), "synchronous", &[]);
    let path = StudyDir::at(root.path()).journal_path();
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let torn = format!("{}\n{{\"event\":\"tel", text.trim_end());
    std::fs::write(&path, torn).unwrap();
    assert_eq!(StudyLog::read(&path).unwrap().trials.len(), 14);
    lines[2] = "not json";
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let err = StudyLog::read(&path)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(err.contains("line 3"), "{err}");
}

#[test]
fn a_ticket_claimed_by_a_worker_that_died_before_its_first_beat_is_queued_again() {
    let store = super::tests::store();
    let root = tempfile::tempdir().unwrap();
    let dir = StudyDir::at(root.path());
    let mut cfg = study("asynchronous");
    (cfg.dispatch.heartbeat_s, cfg.dispatch.grace_s) = (0.05, 0.2);
    let mut c = Coordinator::open(&store, dir.clone(), "t", &cfg).unwrap();
    c.step().unwrap();
    // a worker claims trial 0 and dies before writing its heartbeat
    std::fs::rename(dir.queued(0), dir.claimed(0)).unwrap();
    c.step().unwrap();
    assert!(dir.claimed(0).exists(), "not before the grace period");
    std::thread::sleep(std::time::Duration::from_millis(300));
    c.step().unwrap();
    assert!(dir.queued(0).exists() && !dir.claimed(0).exists());
    assert_eq!(c.log().trials[0].requeues, 1);
    assert_eq!(c.log().trials[0].status, TrialStatus::Queued);
}
