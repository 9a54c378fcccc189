//! How long `runs::scan` takes over many run directories: writes N synthetic runs (metrics,
//! config, 20-epoch history) into a temp directory, scans them, and writes a JSON result.
//! `cargo bench --bench scan -- [N] [OUT.json]` (default 10000 runs, JSON to stdout).

use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let n: usize = args
        .first()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(10_000);
    let tmp = tempfile::tempdir()?;
    let root = tmp.path().join("runs");
    let mut history = String::from("epoch,train_loss,train_acc,val_loss,val_acc,lr,epoch_time_s\n");
    for e in 1..=20 {
        history += &format!("{e},0.3,0.9,0.2,0.{},0.001,3.5\n", 9000 + e);
    }
    let started = Instant::now();
    for i in 0..n {
        let (exp, seed) = (i / 50, i % 50);
        let dir = root
            .join(format!("exp_{exp}"))
            .join("default")
            .join(format!("seed_{seed}"));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(
            dir.join("metrics.json"),
            format!(
                r#"{{"schema_version":1,"experiment":"exp_{exp}","variant":"default","model":"ffnn","dataset":"mnist","seed":{seed},"status":"completed","best_val_acc":0.97,"best_epoch":20,"final_val_acc":0.97,"test_acc":0.97,"test_loss":0.1,"epochs_done":20,"epochs_planned":20,"early_stopped":false,"params":1000,"wall_time_s":60.0,"started_at":"2026-11-30T00:00:00Z","finished_at":"2026-11-30T00:01:00Z","host":"h","git_commit":null,"resumed":0,"error":null}}"#
            ),
        )?;
        std::fs::write(
            dir.join("config.yaml"),
            format!("name: exp_{exp}\nseed: {seed}\noptimizer:\n  kind: adam\n  lr: 0.001\nmodel:\n  kind: ffnn\n  hidden: [256, 128]\n"),
        )?;
        std::fs::write(dir.join("history.csv"), &history)?;
    }
    let write_s = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let scan = autoresearch::runs::scan(&root)?;
    let scan_s = started.elapsed().as_secs_f64();
    let json = format!(
        "{{\"runs\": {n}, \"scan_s\": {scan_s:.3}, \"runs_per_s\": {:.0}, \"history_rows\": {}, \"problems\": {}, \"write_s\": {write_s:.3}, \"threads\": {}}}\n",
        n as f64 / scan_s,
        scan.history.height(),
        scan.problems.len(),
        rayon::current_num_threads()
    );
    match args.get(1) {
        Some(path) => std::fs::write(path, &json)?,
        None => print!("{json}"),
    }
    Ok(())
}
