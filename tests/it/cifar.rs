//! CIFAR-10's pipeline end to end on synthetic files in the official binary format: a width-16
//! ResNet-18 trained with the reference's best recipe (SGD 0.1 / 0.9 / 5e-4, cosine per epoch,
//! flip + reflect-padded crop) learns 512 class-structured 32x32 images and generalises to
//! held-out ones; its batch norm statistics and augmentation resume exactly.

use std::path::Path;

use autoresearch::TrainOptions;

use crate::{compose, tempdir};

/// A small xorshift generator (the test's own, so the images never change).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.next().max(1e-12), self.next());
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
    }
}

/// Per class and channel, three random plane waves of 1-3 cycles per image.
fn templates(rng: &mut Rng) -> Vec<Vec<[f64; 4]>> {
    (0..10 * 3)
        .map(|_| {
            (0..3)
                .map(|_| {
                    let cycles = 1.0 + 2.0 * rng.next();
                    let angle = std::f64::consts::TAU * rng.next();
                    let phase = std::f64::consts::TAU * rng.next();
                    [
                        cycles * angle.cos(),
                        cycles * angle.sin(),
                        phase,
                        0.5 + rng.next(),
                    ]
                })
                .collect()
        })
        .collect()
}

/// One record: the label, then the R, G, B planes of the class's waves shifted by up to 3
/// pixels, with pixel noise.
fn record(label: usize, waves: &[Vec<[f64; 4]>], rng: &mut Rng) -> Vec<u8> {
    let (dy, dx) = (6.0 * rng.next() - 3.0, 6.0 * rng.next() - 3.0);
    let mut out = vec![label as u8];
    for c in 0..3 {
        for y in 0..32 {
            for x in 0..32 {
                let (fy, fx) = ((y as f64 + dy) / 32.0, (x as f64 + dx) / 32.0);
                let v: f64 = waves[label * 3 + c]
                    .iter()
                    .map(|[ky, kx, phase, amp]| {
                        amp * (std::f64::consts::TAU * (ky * fy + kx * fx) + phase).sin()
                    })
                    .sum();
                out.push((128.0 + 40.0 * v + 20.0 * rng.normal()).clamp(0.0, 255.0) as u8);
            }
        }
    }
    out
}

/// 569 training records over the five training files (10% of them are held out for
/// validation, leaving 512 to train on) and 512 test records.
fn write_synthetic_cifar(dir: &Path) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let waves = templates(&mut rng);
    let mut n = 0;
    let mut file = |name: &str, count: usize, rng: &mut Rng| {
        let bytes: Vec<u8> = (0..count)
            .flat_map(|_| {
                n += 1;
                record(n % 10, &waves, rng)
            })
            .collect();
        std::fs::write(dir.join(name), bytes).unwrap();
    };
    for (i, count) in [114, 114, 114, 114, 113].into_iter().enumerate() {
        file(&format!("data_batch_{}.bin", i + 1), count, &mut rng);
    }
    file("test_batch.bin", 512, &mut rng);
}

fn overrides(data: &Path, epochs: usize) -> Vec<String> {
    vec![
        format!("data.root={}", data.display()),
        "data.verify_checksums=false".to_string(),
        "model.width=16".to_string(),
        format!("epochs={epochs}"),
    ]
}

/// The reference's best recipe at width 16 for 30 epochs: training accuracy >= 99%, the 512
/// held-out test images >= 95%.
#[test]
fn a_width_16_resnet18_learns_synthetic_cifar_with_the_sgd_cosine_augmented_recipe() {
    let (data, runs) = (tempdir(), tempdir());
    write_synthetic_cifar(data.path());
    let args = overrides(data.path(), 30);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = compose("cifar10_resnet18_sgd_cosine_augmented", runs.path(), &args)
        .unwrap()
        .train_with(&TrainOptions::default().with_quiet(true))
        .unwrap();
    let history = std::fs::read_to_string(out.dir.path().join("history.csv")).unwrap();
    let header: Vec<&str> = history.lines().next().unwrap().split(',').collect();
    let last: Vec<&str> = history.lines().last().unwrap().split(',').collect();
    let col = |name: &str| -> f64 {
        let i = header.iter().position(|c| *c == name).unwrap();
        last[i].parse().unwrap()
    };
    let (train_acc, lr) = (col("train_acc"), col("lr"));
    let test_acc = out.metrics.test_acc.unwrap();
    eprintln!(
        "train_acc {train_acc}, val {:?}, test_acc {test_acc}",
        out.metrics.best_val_acc
    );
    assert!(train_acc >= 0.99, "training accuracy {train_acc}");
    assert!(test_acc >= 0.95, "held-out accuracy {test_acc}");
    // cosine per epoch over 30 epochs: the last epoch runs at 0.05 (1 + cos(29 pi / 30))
    let want = 0.05 * (1.0 + (29.0 * std::f64::consts::PI / 30.0).cos());
    assert!((lr - want).abs() < 1e-12, "last epoch's lr {lr}");
}

/// Stopped after 1 of 2 epochs and resumed, the run's history (augmented batches, running
/// statistics, momentum) is the uninterrupted run's, bit for bit.
#[test]
fn resnet_with_augmentation_resumes_exactly() {
    let (data, runs_a, runs_b) = (tempdir(), tempdir(), tempdir());
    write_synthetic_cifar(data.path());
    let mut args = overrides(data.path(), 2);
    args.push("model.width=4".to_string());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let exp = |runs: &Path| compose("cifar10_resnet18_sgd_cosine_augmented", runs, &args).unwrap();
    let quiet = TrainOptions::default().with_quiet(true);
    let whole = exp(runs_a.path()).train_with(&quiet).unwrap();
    exp(runs_b.path())
        .train_with(&quiet.clone().with_stop_after_epochs(1))
        .unwrap();
    let resumed = exp(runs_b.path()).train_with(&quiet).unwrap();
    assert!(resumed.resumed);
    let strip = |dir: &Path| -> Vec<String> {
        let text = std::fs::read_to_string(dir.join("history.csv")).unwrap();
        let header: Vec<&str> = text.lines().next().unwrap().split(',').collect();
        let time = header.iter().position(|c| *c == "epoch_time_s").unwrap();
        text.lines()
            .map(|l| {
                l.split(',')
                    .enumerate()
                    .filter(|(i, _)| *i != time)
                    .map(|(_, v)| v.to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect()
    };
    assert_eq!(strip(whole.dir.path()), strip(resumed.dir.path()));
    assert_eq!(whole.metrics.test_acc, resumed.metrics.test_acc);
}
