//! Research state end to end on a fixture project written from the schema: both iteration
//! shapes, results computed from run directories, resume with pending jobs, finished runs and
//! human feedback, invalidation, leaderboard rows from the iterations, and the CLI.

use std::path::Path;
use std::process::Command;

use autoresearch::cluster::LedgerJob;
use autoresearch::report::{Annotations, Leaderboard};
use autoresearch::runs::scan;
use autoresearch::state::{Phase, ProjectStore, RunRow, Timestamp};

use crate::tempdir;

fn write(path: &Path, text: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

/// A run directory `runs/<exp>/<variant>/seed_<seed>` with `status` and `best`.
fn run(root: &Path, exp: &str, variant: &str, seed: u64, status: &str, best: f64, finished: &str) {
    let dir = root.join(exp).join(variant).join(format!("seed_{seed}"));
    let last = best - 0.005; // the last epoch's accuracy, a little below the best
    let finished = if finished.is_empty() {
        "null".to_string()
    } else {
        format!("\"{finished}\"")
    };
    write(
        &dir.join("metrics.json"),
        &format!(
            r#"{{"schema_version": 1, "experiment": "{exp}", "variant": "{variant}", "model": "snn_ffnn",
"dataset": "mnist", "seed": {seed}, "status": "{status}", "best_val_acc": {best}, "best_epoch": 2,
"final_val_acc": {last}, "test_acc": {best}, "test_loss": 0.1, "epochs_done": 2, "epochs_planned": 2,
"early_stopped": false, "params": 1000, "wall_time_s": 5.0, "started_at": "2026-11-20T09:00:00Z",
"finished_at": {finished}, "host": "node1", "git_commit": "abc", "resumed": 0, "error": null}}"#
        ),
    );
    write(
        &dir.join("config.yaml"),
        &format!("name: {exp}\nseed: {seed}\n"),
    );
    write(
        &dir.join("history.csv"),
        &format!("epoch,train_loss,train_acc,val_loss,val_acc,lr,epoch_time_s\n1,0.5,{best},0.3,{best},0.001,2.0\n"),
    );
}

/// Iteration 1 in the `phases:` shape (completed, with conclusions), iteration 2 in the
/// `phase_history:` shape (experiment phase, feedback waiting), and a paused project.
fn fixture(projects: &Path) {
    write(
        &projects.join("registry.yaml"),
        "projects:\n- slug: lif-beta\n  name: Learnable beta\n  status: active\n  owner: lab-a\n- slug: old-idea\n  name: Old idea\n  status: paused\nschema: reference-1\n",
    );
    write(
        &projects.join("lif-beta/project.yaml"),
        "name: Learnable beta\nslug: lif-beta\nstatus: active\ncreated: 2026-11-01\ndescription: Does a learnable membrane decay help a rate-coded SNN?\nhuman_direction: Keep runs under 10 minutes each\ncurrent_iteration: 2\nbest_result: null\nfunding: none\n",
    );
    write(
        &projects.join("lif-beta/iterations/001/iteration.yaml"),
        "number: 1\ngoal: Baseline with fixed beta\nphase: completed\ncreated: 2026-11-01\nphases:\n  survey:\n    started_at: 2026-11-01T09:00:00Z\n    completed_at: 2026-11-02T09:00:00Z\n    notes: snntorch tutorials\n  implement:\n    started_at: 2026-11-02T09:00:00Z\n    completed_at: 2026-11-03T09:00:00Z\n  experiment:\n    started_at: 2026-11-03T09:00:00Z\n    completed_at: 2026-11-05T09:00:00Z\n  analyze:\n    started_at: 2026-11-05T09:00:00Z\n    completed_at: 2026-11-06T09:00:00Z\n  conclude:\n    started_at: 2026-11-06T09:00:00Z\n    completed_at: 2026-11-06T12:00:00Z\n  completed:\n    started_at: 2026-11-06T12:00:00Z\n    completed_at: 2026-11-06T12:00:00Z\nreviewer: sam\n",
    );
    write(
        &projects.join("lif-beta/iterations/001/experiments.yaml"),
        "experiments:\n- config: snn_fixed\n  variants: [default]\n  notes: fixed beta 0.95\n",
    );
    write(
        &projects.join("lif-beta/iterations/001/conclusions.md"),
        "---\niteration: 1\ndecision: continue\n---\n# Fixed beta\n\nA baseline to beat.\n",
    );
    write(
        &projects.join("lif-beta/iterations/002/iteration.yaml"),
        "iteration: '002'\ngoal: Learnable beta vs fixed\ncurrent_phase: experiment\nphase_history:\n- phase: survey\n  started_at: 2026-11-10T08:00:00Z\n  completed_at: 2026-11-10T12:00:00Z\n- phase: implement\n  started_at: 2026-11-10T12:00:00Z\n  completed_at: 2026-11-11T09:00:00Z\n- phase: experiment\n  started_at: 2026-11-11T09:00:00Z\n  cluster: lengau\nhuman_feedback:\n- at: 2026-11-12T10:00:00Z\n  text: Also report spike counts\n",
    );
    write(
        &projects.join("lif-beta/iterations/002/experiments.yaml"),
        "experiments:\n- config: snn_learn\n  variants: [default]\n  seeds: [0, 1, 2]\n  hypothesis: learnable beta beats fixed by 0.3 points\n  priority: high\n- config: snn_learn\n  variants: [lr=0.01]\n",
    );
    write(
        &projects.join("lif-beta/iterations/002/literature.yaml"),
        "papers:\n- title: Incorporating learnable membrane time constant\n  year: 2021\n  authors: [Fang, Yu]\n",
    );
    write(
        &projects.join("old-idea/project.yaml"),
        "name: Old idea\nslug: old-idea\nstatus: paused\n",
    );
}

/// Runs of both iterations, finished on the 20th-22nd; one running, one failed, one outside
/// the iteration's seeds.
fn fixture_runs(runs: &Path) {
    run(
        runs,
        "snn_fixed",
        "default",
        0,
        "completed",
        0.9700,
        "2026-11-05T08:00:00Z",
    );
    run(
        runs,
        "snn_fixed",
        "default",
        1,
        "completed",
        0.9720,
        "2026-11-05T08:30:00Z",
    );
    run(
        runs,
        "snn_learn",
        "default",
        0,
        "completed",
        0.9750,
        "2026-11-20T10:00:00Z",
    );
    run(
        runs,
        "snn_learn",
        "default",
        1,
        "completed",
        0.9770,
        "2026-11-22T10:00:00Z",
    );
    run(runs, "snn_learn", "default", 2, "running", 0.9600, "");
    run(
        runs,
        "snn_learn",
        "default",
        7,
        "completed",
        0.9990,
        "2026-11-22T11:00:00Z",
    );
    run(
        runs,
        "snn_learn",
        "lr=0.01",
        0,
        "failed",
        0.1000,
        "2026-11-21T10:00:00Z",
    );
}

/// One running job for seed 2 and one completed job, as the cluster code writes them.
fn fixture_jobs() -> Vec<LedgerJob> {
    serde_yaml_ng::from_str(
        "- id: '41_2'\n  cluster: lengau\n  queue: serial\n  script: jobs/x.pbs\n  commands: [autoresearch train experiment=snn_learn seed=2]\n  sweep_points: [seed=2]\n  transitions:\n  - {at: '2026-11-20T09:00:00Z', state: submitted}\n  - {at: '2026-11-20T09:05:00Z', state: running}\n  run_dirs: [snn_learn/default/seed_2]\n- id: '41_0'\n  cluster: lengau\n  queue: serial\n  script: jobs/x.pbs\n  commands: [autoresearch train experiment=snn_learn seed=0]\n  sweep_points: [seed=0]\n  transitions:\n  - {at: '2026-11-20T09:00:00Z', state: completed}\n  run_dirs: [snn_learn/default/seed_0]\n- id: '9'\n  cluster: lengau\n  queue: serial\n  script: jobs/y.pbs\n  commands: [autoresearch train experiment=other]\n  sweep_points: []\n  transitions:\n  - {at: '2026-11-20T09:00:00Z', state: queued}\n  run_dirs: [other/default/seed_0]\n",
    )
    .unwrap()
}

fn rows(runs: &Path) -> Vec<RunRow> {
    RunRow::from_frame(&scan(runs).unwrap().runs, "best_val_acc").unwrap()
}

#[test]
fn resume_reports_jobs_runs_feedback_and_the_next_action() {
    let tmp = tempdir();
    let (projects, runs) = (tmp.path().join("projects"), tmp.path().join("runs"));
    fixture(&projects);
    fixture_runs(&runs);
    let store = ProjectStore::new(&projects);
    let resume = store
        .resume(None, &scan(&runs).unwrap().runs, &fixture_jobs())
        .unwrap();
    assert_eq!(resume.projects.len(), 1, "the paused project is left out");
    let p = &resume.projects[0];
    assert_eq!((p.iteration, p.phase), (Some(2), Some(Phase::Experiment)));
    assert_eq!(p.goal, "Learnable beta vs fixed");
    assert_eq!(p.phase_since.as_deref(), Some("2026-11-11T09:00:00Z"));
    assert_eq!(
        p.human_direction.as_deref(),
        Some("Keep runs under 10 minutes each")
    );
    assert_eq!(p.feedback_waiting, ["Also report spike counts"]);
    let pending: Vec<&str> = p.pending_jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!(pending, ["41_2"], "only this iteration's unfinished jobs");
    let mut finished: Vec<(String, String)> = p
        .finished_runs
        .iter()
        .map(|r| {
            (
                r.path.rsplit("runs/").next().unwrap().to_string(),
                r.status.clone(),
            )
        })
        .collect();
    finished.sort();
    assert_eq!(
        finished,
        [
            (
                "snn_learn/default/seed_0".to_string(),
                "completed".to_string()
            ),
            (
                "snn_learn/default/seed_1".to_string(),
                "completed".to_string()
            ),
            ("snn_learn/lr=0.01/seed_0".to_string(), "failed".to_string()),
        ]
    );
    // feedback first, then (once addressed) the jobs, then the failed run, then analyze
    assert_eq!(p.next.action, "address the human feedback");
    assert!(
        p.next.reason.contains("Also report spike counts"),
        "{:?}",
        p.next
    );
    store.address_feedback("lif-beta").unwrap();
    let next = |jobs: &[LedgerJob]| {
        store
            .resume(Some("lif-beta"), &scan(&runs).unwrap().runs, jobs)
            .unwrap()
            .projects[0]
            .next
            .clone()
    };
    let n = next(&fixture_jobs());
    assert_eq!(n.action, "check the jobs");
    assert!(n.reason.starts_with("1 job(s)"), "{n:?}");
    let n = next(&[]);
    assert!(n.action.starts_with("look at the failed runs"), "{n:?}");
    assert!(n.reason.contains("lr=0.01/seed_0"), "{n:?}");
    run(
        &runs,
        "snn_learn",
        "lr=0.01",
        0,
        "completed",
        0.9760,
        "2026-11-23T10:00:00Z",
    );
    let n = next(&[]);
    assert_eq!(n.action, "advance to analyze");
    assert_eq!(
        n.command.as_deref(),
        Some("autoresearch state advance lif-beta analyze --note \"...\"")
    );

    // the text form names everything a person needs
    let text = store
        .resume(None, &scan(&runs).unwrap().runs, &fixture_jobs())
        .unwrap()
        .to_string();
    for part in [
        "Learnable beta (lif-beta)",
        "iteration 002, phase experiment",
        "pending jobs: 1",
        "41_2 on lengau (running)",
        "human direction: Keep runs",
        "next: check the jobs",
    ] {
        assert!(text.contains(part), "`{part}` missing:\n{text}");
    }

    // a look is recorded; later runs only count from there
    store
        .mark_resumed(
            "lif-beta",
            &Timestamp::parse("2026-11-22T12:00:00Z").unwrap(),
        )
        .unwrap();
    let p = store
        .resume(Some("lif-beta"), &scan(&runs).unwrap().runs, &[])
        .unwrap()
        .projects
        .remove(0);
    let paths: Vec<&str> = p.finished_runs.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(paths.len(), 1, "{paths:?}");
    assert!(paths[0].ends_with("lr=0.01/seed_0"));

    // every project's runs carry its own metric, also when no project is named
    let mut project = store.project("lif-beta").unwrap();
    project.metric = "final_val_acc".into();
    store.save_project(&project).unwrap();
    let frame = scan(&runs).unwrap().runs;
    let p = store.resume(None, &frame, &[]).unwrap().projects.remove(0);
    let want = RunRow::from_frame(&frame, "final_val_acc").unwrap();
    let best = RunRow::from_frame(&frame, "best_val_acc").unwrap();
    for r in &p.finished_runs {
        let row = want.iter().find(|w| w.path == r.path).unwrap();
        assert_eq!(r.value, row.value, "{}", r.path);
        let best = best.iter().find(|w| w.path == r.path).unwrap();
        assert!(r.value.unwrap() < best.value.unwrap(), "{}", r.path);
    }
}

#[test]
fn results_come_from_run_directories_and_invalid_ones_leave_the_ranking() {
    let tmp = tempdir();
    let (projects, runs) = (tmp.path().join("projects"), tmp.path().join("runs"));
    fixture(&projects);
    fixture_runs(&runs);
    let store = ProjectStore::new(&projects);
    let now = Timestamp::parse("2026-11-30T09:00:00Z").unwrap();
    let done = store
        .refresh("lif-beta", &rows(&runs), "runs", &now)
        .unwrap();
    let learn = &done
        .results
        .iter()
        .find(|r| r.iteration == 2 && r.config == "snn_learn")
        .unwrap()
        .variants;
    assert_eq!(learn.len(), 1, "lr=0.01 has no completed run");
    let r = &learn[0];
    assert_eq!(
        (r.variant.as_str(), r.n_seeds, r.best_seed),
        ("default", 2, 1)
    );
    assert!(
        (r.mean - 0.9760).abs() < 1e-12,
        "seeds 0 and 1 only, not 7: {}",
        r.mean
    );
    assert!((r.std.unwrap() - 0.0014142135623730963).abs() < 1e-12);
    assert_eq!(r.runs.len(), 2);
    let best = done.best.clone().unwrap();
    assert_eq!((best.experiment.as_str(), best.iteration), ("snn_learn", 2));
    // written into the files, unknown fields kept
    let exp_text =
        std::fs::read_to_string(projects.join("lif-beta/iterations/002/experiments.yaml")).unwrap();
    assert!(
        exp_text.contains("priority: high") && exp_text.contains("mean: 0.976"),
        "{exp_text}"
    );
    let project = store.project("lif-beta").unwrap();
    assert_eq!(project.best_result, done.best);
    assert_eq!(project.extra["funding"], "none");
    let registry = std::fs::read_to_string(projects.join("registry.yaml")).unwrap();
    assert!(
        registry.contains("owner: lab-a") && registry.contains("schema: reference-1"),
        "{registry}"
    );

    // invalidation needs a reason, withdraws the best result, and moves the row
    let e = store
        .invalidate("lif-beta", None, "snn_learn/default", "  ", &now)
        .unwrap_err();
    assert!(e.to_string().contains("needs a reason"), "{e}");
    let e = store
        .invalidate("lif-beta", None, "snn_nope", "x", &now)
        .unwrap_err();
    assert!(e.to_string().contains("snn_learn"), "{e}");
    store
        .invalidate(
            "lif-beta",
            None,
            "snn_learn/default",
            "validation images leaked into training",
            &now,
        )
        .unwrap();
    assert_eq!(store.project("lif-beta").unwrap().best_result, None);
    let done = store
        .refresh("lif-beta", &rows(&runs), "runs", &now)
        .unwrap();
    let best = done.best.unwrap();
    assert_eq!((best.experiment.as_str(), best.iteration), ("snn_fixed", 1));
    assert!((best.mean - 0.9710).abs() < 1e-12);

    // leaderboard rows labelled from the iterations; the invalid one in the invalid table
    let board =
        Leaderboard::build(&scan(&runs).unwrap().runs, &store.annotations().unwrap()).unwrap();
    let ranked = &board.datasets[0].rows;
    let fixed = ranked
        .iter()
        .find(|r| r.model.starts_with("snn_fixed"))
        .unwrap();
    assert_eq!(
        (
            fixed.project.as_str(),
            fixed.iteration.as_str(),
            fixed.notes.as_str()
        ),
        ("lif-beta", "1", "fixed beta 0.95")
    );
    assert!(
        ranked.iter().all(|r| !r.model.starts_with("snn_learn (")),
        "{ranked:?}"
    );
    let invalid = board
        .invalid
        .iter()
        .find(|r| r.model.starts_with("snn_learn"))
        .unwrap();
    assert_eq!(invalid.notes, "validation images leaked into training");
    assert_eq!(
        (invalid.project.as_str(), invalid.iteration.as_str()),
        ("lif-beta", "2")
    );

    // the history shows it all
    let log = store.log("lif-beta").unwrap();
    for part in [
        "iteration 001: Baseline with fixed beta [completed]",
        "snntorch tutorials",
        "invalidated snn_learn/default: validation images leaked",
        "decision: continue",
        "feedback (waiting): Also report spike counts",
        "best: snn_fixed/default (iteration 1)",
    ] {
        assert!(log.contains(part), "`{part}` missing:\n{log}");
    }
    let _ = Annotations::default();
}

#[test]
fn the_cli_walks_an_iteration_and_refuses_bad_moves() {
    let tmp = tempdir();
    let d = tmp.path();
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_autoresearch"))
            .current_dir(d)
            .arg("state")
            .args(args)
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let ok = |args: &[&str]| {
        let (success, out, err) = cli(args);
        assert!(success, "{args:?}: {err}");
        out
    };
    let fails = |args: &[&str], expected: &[&str]| {
        let (success, _, err) = cli(args);
        assert!(
            !success && err.lines().any(|l| l.starts_with("error: ")) && !err.contains("panicked"),
            "{args:?}: {err}"
        );
        for e in expected {
            assert!(err.contains(e), "`{e}` missing from: {err}");
        }
    };
    ok(&[
        "init",
        "snn-rate",
        "--name",
        "Rate coding",
        "--direction",
        "small runs",
    ]);
    fails(&["init", "snn-rate"], &["exists already"]);
    fails(&["init", "Bad Slug"], &["lowercase"]);
    fails(
        &["advance", "snn-rate", "survey"],
        &["no iteration yet", "iteration new snn-rate"],
    );
    ok(&[
        "iteration",
        "new",
        "snn-rate",
        "--goal",
        "Reproduce the rate row",
    ]);
    fails(
        &["iteration", "new", "snn-rate", "--goal", "again"],
        &["phase planned", "completed first"],
    );
    fails(
        &["advance", "snn-rate", "analyze"],
        &["from planned to analyze", "survey"],
    );
    fails(
        &["advance", "snn-rate", "testing"],
        &["unknown phase `testing`", "experiment"],
    );
    ok(&["advance", "snn-rate", "survey", "--note", "two papers"]);
    ok(&["advance", "snn-rate", "implement"]);
    ok(&["advance", "snn-rate", "experiment"]);
    ok(&["advance", "snn-rate", "analyze"]);
    ok(&["advance", "snn-rate", "conclude"]);
    fails(
        &["advance", "snn-rate", "completed"],
        &["conclusions.md", "decision"],
    );
    write(
        &d.join("projects/snn-rate/iterations/001/conclusions.md"),
        "---\niteration: 1\ndecision: stop\n---\nDone.\n",
    );
    ok(&["advance", "snn-rate", "completed", "--note", "answered"]);
    let out = ok(&["resume", "--peek"]);
    assert!(
        out.contains("next: start the next iteration")
            && out.contains("human direction: small runs"),
        "{out}"
    );
    let log = ok(&["log", "snn-rate"]);
    assert!(
        log.contains("two papers") && log.contains("decision: stop"),
        "{log}"
    );
    let it =
        std::fs::read_to_string(d.join("projects/snn-rate/iterations/001/iteration.yaml")).unwrap();
    assert!(
        it.contains("phase_history") && it.contains("phase: completed"),
        "{it}"
    );
    // a malformed file: its path, its line, and what is expected
    write(
        &d.join("projects/snn-rate/project.yaml"),
        "name: Rate\nslug: snn-rate\nstatus: [active\n",
    );
    fails(
        &["log", "snn-rate"],
        &[
            "projects/snn-rate/project.yaml",
            "line",
            "expected a project",
        ],
    );
    write(
        &d.join("projects/snn-rate/project.yaml"),
        "name: Rate\nslug: snn-rate\nstatus: sleeping\n",
    );
    fails(
        &["resume"],
        &["project.yaml", "unknown variant `sleeping`", "active"],
    );
}

/// Copies the directory tree `from` into `to`.
fn copy_tree(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn the_example_project_matches_its_run_directories() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let committed = ProjectStore::new(repo.join("projects"));
    let tmp = tempdir();
    copy_tree(&repo.join("projects"), tmp.path());
    let store = ProjectStore::new(tmp.path());
    // paths as `state refresh --runs reports/runs` run from the repository root records them
    let prefix = format!("{}/", repo.display());
    let mut runs = rows(&repo.join("reports/runs"));
    for r in &mut runs {
        r.path = r.path.trim_start_matches(&prefix).to_string();
    }
    let now = Timestamp::now();
    let done = store
        .refresh("snn-baselines", &runs, "reports/runs", &now)
        .unwrap();
    let mut compared = 0;
    for number in committed.iteration_numbers("snn-baselines").unwrap() {
        let file = committed.experiments("snn-baselines", number).unwrap();
        for plan in file.experiments {
            let fresh = &done
                .results
                .iter()
                .find(|r| r.iteration == number && r.config == plan.config)
                .unwrap()
                .variants;
            assert_eq!(plan.results.len(), fresh.len(), "{number} {}", plan.config);
            for (a, b) in plan.results.iter().zip(fresh) {
                assert_eq!(
                    (&a.variant, a.n_seeds, a.best_seed),
                    (&b.variant, b.n_seeds, b.best_seed)
                );
                assert!(
                    (a.mean - b.mean).abs() < 1e-12 && a.std == b.std,
                    "{a:?} vs {b:?}"
                );
                assert_eq!(
                    a.runs, b.runs,
                    "the committed results name the run directories"
                );
                compared += 1;
            }
        }
    }
    assert_eq!(compared, 3, "three results in the example");
    let best = committed
        .project("snn-baselines")
        .unwrap()
        .best_result
        .unwrap();
    let fresh = done.best.unwrap();
    assert_eq!(
        (best.experiment, best.variant, best.mean),
        (fresh.experiment, fresh.variant, fresh.mean)
    );
}
