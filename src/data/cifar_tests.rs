//! The CIFAR-10 loader on synthetic files in the official binary format.

use std::path::Path;

use candle_core::Device;

use super::*;
use crate::config::{CifarDataConfig, PaddingMode};

/// One record: `label`, then the R, G and B planes, pixel `(y, x)` of channel `c` holding
/// `(c·64 + y·2 + x + seed) mod 256`.
fn record(label: u8, seed: u8) -> Vec<u8> {
    let mut r = vec![label];
    for c in 0..3u32 {
        for y in 0..32u32 {
            for x in 0..32u32 {
                r.push(((c * 64 + y * 2 + x + u32::from(seed)) % 256) as u8);
            }
        }
    }
    r
}

/// Writes the six files with `per_file` records each (labels cycling through 0..10).
fn write_files(dir: &Path, per_file: usize) {
    for (f, (name, _)) in FILES.iter().enumerate() {
        let bytes: Vec<u8> = (0..per_file)
            .flat_map(|i| record((i % 10) as u8, (f * per_file + i) as u8))
            .collect();
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn config(root: &Path) -> CifarDataConfig {
    crate::config::from_yaml_str::<CifarDataConfig>(&format!(
        "root: {}\nverify_checksums: false\n",
        root.display()
    ))
    .unwrap()
}

#[test]
fn synthetic_files_load_with_planes_labels_and_a_disjoint_split() {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), 20);
    let data = dataset(&config(dir.path()), 0).unwrap();
    assert_eq!(
        (data.train.len(), data.val.len(), data.test().unwrap().len()),
        (90, 10, 20)
    );
    let test = data.test().unwrap().batch(&[3], &Device::Cpu).unwrap();
    assert_eq!(test.input.dims(), &[1, 3, 32, 32]);
    assert_eq!(test.target.to_vec1::<u32>().unwrap(), vec![3]);
    // the first 1,024 bytes are the red plane: pixel (y, x) of channel c is c·64 + 2y + x + seed
    let seed = 5 * 20 + 3;
    let pixels: Vec<f32> = test.input.flatten_all().unwrap().to_vec1().unwrap();
    let norm = crate::config::ChannelNormalize::default();
    for (c, y, x) in [(0, 0, 0), (0, 1, 2), (1, 0, 0), (2, 31, 31)] {
        let raw = (c * 64 + y * 2 + x + seed) % 256;
        let want = (raw as f64 / 255.0 - norm.mean[c]) / norm.std[c];
        let got = f64::from(pixels[(c * 32 + y) * 32 + x]);
        assert!(
            (got - want).abs() < 1e-5,
            "channel {c} ({y}, {x}): {got} vs {want}"
        );
    }
    crate::data::check_disjoint(&data).unwrap();
}

#[test]
fn truncated_files_bad_labels_and_wrong_checksums_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), 4);
    let path = dir.path().join("data_batch_3.bin");
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() - 100]).unwrap();
    let err = dataset(&config(dir.path()), 0).unwrap_err().to_string();
    assert!(
        err.contains("data_batch_3.bin") && err.contains("truncated"),
        "{err}"
    );

    let mut bad = bytes.clone();
    bad[RECORD_BYTES] = 10;
    std::fs::write(&path, &bad).unwrap();
    let err = dataset(&config(dir.path()), 0).unwrap_err().to_string();
    assert!(
        err.contains("data_batch_3.bin") && err.contains("label 10"),
        "{err}"
    );

    std::fs::write(&path, &bytes).unwrap();
    let mut checked = config(dir.path());
    checked.verify_checksums = true;
    let err = dataset(&checked, 0).unwrap_err().to_string();
    assert!(
        err.contains("data_batch_1.bin") && err.contains("5dd7e06a14cb22eb9f671a540d1b7c25"),
        "{err}"
    );

    std::fs::remove_file(dir.path().join("test_batch.bin")).unwrap();
    let err = dataset(&config(dir.path()), 0).unwrap_err().to_string();
    assert!(
        err.contains("data.root") && err.contains("test_batch.bin"),
        "{err}"
    );
}

#[test]
fn the_archive_folder_inside_a_root_is_found() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join(ARCHIVE_DIR);
    std::fs::create_dir(&nested).unwrap();
    write_files(&nested, 2);
    assert_eq!(locate(&config(dir.path())).unwrap(), nested);
}

#[test]
fn a_file_mirror_download_checks_the_archive_and_every_file() {
    let dir = tempfile::tempdir().unwrap();
    let files = dir.path().join("files");
    std::fs::create_dir(&files).unwrap();
    write_files(&files, 3);
    let mirror = dir.path().join("mirror");
    std::fs::create_dir(&mirror).unwrap();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    let mut table = Vec::new();
    for (name, _) in FILES {
        let bytes = std::fs::read(files.join(name)).unwrap();
        table.push((name, hex(&md5::Md5::digest(&bytes))));
        tar.append_path_with_name(files.join(name), format!("{ARCHIVE_DIR}/{name}"))
            .unwrap();
    }
    let archive = tar.into_inner().unwrap().finish().unwrap();
    std::fs::write(mirror.join(ARCHIVE.0), &archive).unwrap();
    let url = vec![format!("file://{}", mirror.display())];
    let table: Vec<(&str, &str)> = table.iter().map(|(n, m)| (*n, m.as_str())).collect();

    // the official checksum refuses this archive, naming what it expected
    let target = dir.path().join("cache");
    let err = download(&url, &target, ARCHIVE.1, &table).unwrap_err();
    assert!(err.contains(ARCHIVE.1) && !target.exists(), "{err}");
    // a file whose checksum differs is refused
    let archive_md5 = hex(&md5::Md5::digest(&archive));
    let mut wrong = table.clone();
    wrong[4].1 = FILES[4].1;
    let err = download(&url, &target, &archive_md5, &wrong).unwrap_err();
    assert!(err.contains("data_batch_5.bin"), "{err}");
    // with matching checksums the six files land in the target, byte for byte
    download(&url, &target, &archive_md5, &table).unwrap();
    for (name, _) in FILES {
        assert_eq!(
            std::fs::read(target.join(name)).unwrap(),
            std::fs::read(files.join(name)).unwrap()
        );
    }
}

#[test]
fn only_the_training_split_is_augmented_and_validation_batches_never_change() {
    let dir = tempfile::tempdir().unwrap();
    write_files(dir.path(), 20);
    let mut cfg = config(dir.path());
    cfg.augment = vec![
        Augment::HorizontalFlip { p: 0.5 },
        Augment::RandomCrop {
            size: 32,
            padding: 4,
            padding_mode: PaddingMode::Reflect,
        },
    ];
    let data = dataset(&cfg, 0).unwrap();
    let idx: Vec<usize> = (0..8).collect();
    let cpu = Device::Cpu;
    let values =
        |b: crate::data::Batch| -> Vec<f32> { b.input.flatten_all().unwrap().to_vec1().unwrap() };
    let a = values(data.train.train_batch(&idx, &cpu, 1).unwrap());
    let again = values(data.train.train_batch(&idx, &cpu, 1).unwrap());
    let other = values(data.train.train_batch(&idx, &cpu, 2).unwrap());
    let plain = values(data.train.batch(&idx, &cpu).unwrap());
    assert_eq!(a, again, "the same seed gives the same augmented batch");
    assert_ne!(a, other);
    assert_ne!(a, plain);
    for split in [&*data.val, data.test().unwrap()] {
        let plain = values(split.batch(&idx, &cpu).unwrap());
        for seed in [1, 2, 3] {
            assert_eq!(values(split.train_batch(&idx, &cpu, seed).unwrap()), plain);
        }
    }
}

#[test]
fn crops_that_change_the_image_size_and_bad_normalisation_are_refused() {
    let mut cfg = config(Path::new("/nonexistent"));
    cfg.augment = vec![Augment::RandomCrop {
        size: 28,
        padding: 0,
        padding_mode: PaddingMode::Zeros,
    }];
    let err = check(&cfg).unwrap_err().to_string();
    assert!(err.contains("data.augment") && err.contains("32"), "{err}");
    cfg.augment = vec![Augment::HorizontalFlip { p: 1.5 }];
    let err = check(&cfg).unwrap_err().to_string();
    assert!(err.contains("data.augment[0].p"), "{err}");
    cfg.augment.clear();
    cfg.normalize.std = vec![0.2, 0.2];
    let err = check(&cfg).unwrap_err().to_string();
    assert!(err.contains("data.normalize"), "{err}");
}
