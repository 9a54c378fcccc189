use std::path::{Path, PathBuf};

use autoresearch::config::{DatasetName, ImageDataConfig, Normalize};
use autoresearch::data::{load_splits_from, DataSearch, DatasetFiles};
use autoresearch::Error;

use crate::{shared_mnist, tempdir};

fn data_cfg(limit: Option<usize>) -> ImageDataConfig {
    ImageDataConfig {
        root: None,
        val_fraction: 0.1,
        split_seed: None,
        limit,
        test_limit: None,
        normalize: Normalize::None,
        mirrors: vec![],
    }
}

fn shared_files() -> DatasetFiles {
    DataSearch {
        config_root: Some(shared_mnist()),
        ..Default::default()
    }
    .locate(DatasetName::Mnist)
    .unwrap()
}

#[test]
fn loads_real_mnist_with_seeded_validation_split() {
    let splits = load_splits_from(&shared_files(), &data_cfg(None), 0).unwrap();
    assert_eq!(
        (splits.train.len(), splits.val.len(), splits.test.len()),
        (54_000, 6_000, 10_000)
    );
    assert_eq!(splits.train.shape, [1, 28, 28]);
    assert!(splits
        .train
        .images
        .iter()
        .all(|&p| (0.0..=1.0).contains(&p)));
    // MNIST's known training-set pixel mean is 0.1307
    let mean = splits.train.images.iter().map(|&p| p as f64).sum::<f64>()
        / splits.train.images.len() as f64;
    assert!((mean - 0.1307).abs() < 0.002, "mean {mean}");
    let mut counts = [0usize; 10];
    splits
        .test
        .labels
        .iter()
        .for_each(|&l| counts[l as usize] += 1);
    assert_eq!(
        counts,
        [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    );

    let again = load_splits_from(&shared_files(), &data_cfg(Some(2000)), 0).unwrap();
    let other = load_splits_from(&shared_files(), &data_cfg(Some(2000)), 1).unwrap();
    assert_eq!((again.train.len(), again.val.len()), (1800, 200));
    assert_eq!(
        again.val.labels,
        load_splits_from(&shared_files(), &data_cfg(Some(2000)), 0)
            .unwrap()
            .val
            .labels
    );
    assert_ne!(
        again.val.images, other.val.images,
        "different seeds must split differently"
    );
    // standardisation is an affine map of the same pixels
    let mut cfg = data_cfg(Some(10));
    cfg.normalize = Normalize::Standardize {
        mean: 0.5,
        std: 0.5,
    };
    let std = load_splits_from(&shared_files(), &cfg, 0).unwrap();
    let raw = load_splits_from(&shared_files(), &data_cfg(Some(10)), 0).unwrap();
    assert!(std
        .train
        .images
        .iter()
        .zip(&raw.train.images)
        .all(|(s, r)| (s - (r - 0.5) / 0.5).abs() < 1e-5));
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, to.join(path.file_name().unwrap())).unwrap();
    }
}

fn gunzip(path: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()),
        &mut out,
    )
    .unwrap();
    out
}

fn load_err(dir: &Path) -> String {
    let files = DataSearch {
        config_root: Some(dir.to_path_buf()),
        ..Default::default()
    }
    .locate(DatasetName::Mnist)
    .unwrap();
    match load_splits_from(&files, &data_cfg(Some(100)), 0) {
        Ok(_) => panic!("corrupted data in {} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn raw_files_load_like_gz_and_corruption_names_the_file() {
    let tmp = tempdir();
    let raw = tmp.path().join("raw");
    std::fs::create_dir_all(&raw).unwrap();
    for name in [
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ] {
        std::fs::write(
            raw.join(name),
            gunzip(&shared_mnist().join(format!("{name}.gz"))),
        )
        .unwrap();
    }
    let from_raw = DataSearch {
        config_root: Some(raw.clone()),
        ..Default::default()
    }
    .locate(DatasetName::Mnist)
    .unwrap();
    assert_eq!(
        load_splits_from(&from_raw, &data_cfg(Some(500)), 0)
            .unwrap()
            .train
            .images,
        load_splits_from(&shared_files(), &data_cfg(Some(500)), 0)
            .unwrap()
            .train
            .images
    );

    // truncated raw payload
    let bytes = std::fs::read(raw.join("t10k-labels-idx1-ubyte")).unwrap();
    std::fs::write(
        raw.join("t10k-labels-idx1-ubyte"),
        &bytes[..bytes.len() - 10],
    )
    .unwrap();
    let m = load_err(&raw);
    assert!(
        m.contains("t10k-labels-idx1-ubyte") && m.contains("truncated payload"),
        "{m}"
    );

    // truncated gzip stream
    let gz = tmp.path().join("gz");
    copy_dir(&shared_mnist(), &gz);
    let bytes = std::fs::read(gz.join("train-images-idx3-ubyte.gz")).unwrap();
    std::fs::write(
        gz.join("train-images-idx3-ubyte.gz"),
        &bytes[..bytes.len() / 2],
    )
    .unwrap();
    let m = load_err(&gz);
    assert!(
        m.contains("train-images-idx3-ubyte.gz") && m.contains("corrupt or truncated gzip"),
        "{m}"
    );

    // wrong magic: labels where images belong
    let swapped = tmp.path().join("swapped");
    copy_dir(&shared_mnist(), &swapped);
    std::fs::copy(
        swapped.join("train-labels-idx1-ubyte.gz"),
        swapped.join("train-images-idx3-ubyte.gz"),
    )
    .unwrap();
    let m = load_err(&swapped);
    assert!(
        m.contains("train-images-idx3-ubyte.gz")
            && m.contains("wrong magic number 0x0801, expected 0x0803"),
        "{m}"
    );
}

#[test]
fn missing_data_error_lists_every_place_looked() {
    let tmp = tempdir();
    let search = DataSearch {
        config_root: None,
        env_root: Some(tmp.path().join("env")),
        shared_roots: vec![tmp.path().join("shared/data")],
        cache_root: Some(tmp.path().join("cache")),
        mirrors: vec![format!("file://{}", tmp.path().join("no-mirror").display())],
    };
    match search.locate(DatasetName::Mnist) {
        Err(Error::DataNotFound { dataset, looked }) => {
            assert_eq!(dataset, "mnist");
            for place in [
                "env/mnist",
                "shared/data/mnist",
                "cache/mnist",
                "no-mirror/train-images-idx3-ubyte.gz",
            ] {
                assert!(looked.contains(place), "`{place}` missing from: {looked}");
            }
        }
        other => panic!("expected DataNotFound, got {other:?}"),
    }
    // a configured root is the only place looked: it holds the data or it is an error
    let configured = DataSearch {
        config_root: Some(tmp.path().join("configured")),
        cache_root: Some(tmp.path().join("cache")),
        ..Default::default()
    };
    match configured.locate(DatasetName::Mnist) {
        Err(Error::InvalidConfig { key, message }) => {
            assert_eq!(key, "data.root");
            assert!(message.contains("configured"), "{message}");
        }
        other => panic!("expected a data.root error, got {other:?}"),
    }
    // a folder with only some files says which are missing
    let partial = tmp.path().join("partial");
    std::fs::create_dir_all(&partial).unwrap();
    std::fs::copy(
        shared_mnist().join("train-images-idx3-ubyte.gz"),
        partial.join("train-images-idx3-ubyte.gz"),
    )
    .unwrap();
    let err = DataSearch {
        config_root: Some(partial),
        ..Default::default()
    }
    .locate(DatasetName::Mnist)
    .unwrap_err()
    .to_string();
    assert!(
        err.contains(
            "missing train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte"
        ),
        "{err}"
    );
}

#[test]
fn downloads_into_cache_with_checksums_from_a_file_url() {
    let tmp = tempdir();
    let mirror: PathBuf = tmp.path().join("mirror");
    copy_dir(&shared_mnist(), &mirror);
    let search = DataSearch {
        cache_root: Some(tmp.path().join("cache")),
        mirrors: vec![
            "file:///nonexistent/first-mirror-fails".to_string(),
            format!("file://{}", mirror.display()),
        ],
        ..Default::default()
    };
    let files = search.locate(DatasetName::Mnist).unwrap();
    assert_eq!(
        files.train_images,
        tmp.path().join("cache/mnist/train-images-idx3-ubyte.gz")
    );
    assert_eq!(
        std::fs::read(&files.test_labels).unwrap(),
        std::fs::read(mirror.join("t10k-labels-idx1-ubyte.gz")).unwrap()
    );
    // second call finds the cache without the mirror
    let cached = DataSearch {
        cache_root: Some(tmp.path().join("cache")),
        ..Default::default()
    }
    .locate(DatasetName::Mnist)
    .unwrap();
    assert_eq!(cached, files);

    // a tampered mirror file fails its checksum and is not written to the cache
    let bad = tmp.path().join("bad");
    copy_dir(&shared_mnist(), &bad);
    let mut bytes = gunzip(&bad.join("t10k-labels-idx1-ubyte.gz"));
    bytes[100] ^= 1;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut enc, &bytes).unwrap();
    std::fs::write(bad.join("t10k-labels-idx1-ubyte.gz"), enc.finish().unwrap()).unwrap();
    let search = DataSearch {
        cache_root: Some(tmp.path().join("cache2")),
        mirrors: vec![format!("file://{}", bad.display())],
        ..Default::default()
    };
    let err = search.locate(DatasetName::Mnist).unwrap_err().to_string();
    assert!(
        err.contains("t10k-labels-idx1-ubyte.gz") && err.contains("checksum mismatch"),
        "{err}"
    );
    assert!(!tmp
        .path()
        .join("cache2/mnist/t10k-labels-idx1-ubyte.gz")
        .exists());
}
