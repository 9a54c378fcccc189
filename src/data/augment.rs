//! Training-image transforms on `u8` pixels, then normalisation: a typed pipeline
//! (`data.augment`) applied per image with a generator seeded by (run seed, epoch, batch,
//! position in the batch), so a resumed run sees the same augmented batches.
//!
//! Only a training split holds a pipeline ([`crate::data::cifar`]'s `Augmented`); validation
//! and test splits are plain image sets, so their views cannot be augmented.

use rand::{Rng, SeedableRng};

use crate::config::{Augment, ChannelNormalize, PaddingMode};

/// Mixed into the run seed for augmentation draws, so they are independent of the encoder's.
pub const AUGMENT_SALT: u64 = 0xA076_1D64_78BD_642F;

/// The generator of image `index` of a batch seeded `batch_seed`.
pub fn image_rng(batch_seed: u64, index: usize) -> rand::rngs::StdRng {
    let mixed = batch_seed ^ (index as u64 + 1).wrapping_mul(0xD1B5_4A32_D192_ED03);
    rand::rngs::StdRng::seed_from_u64(mixed)
}

/// Mirrors every row of a `[C, H, W]` image.
pub fn flip_horizontal(image: &[u8], [c, h, w]: [usize; 3]) -> Vec<u8> {
    let mut out = image.to_vec();
    for row in out[..c * h * w].chunks_exact_mut(w) {
        row.reverse();
    }
    out
}

/// The source index of padded coordinate `p` (`0..n + 2·pad`) in a side of `n` pixels:
/// `Some(i)` inside or reflected (torch's `reflect`, the edge pixel not repeated), `None` in a
/// zero pad.
pub fn padded_source(p: usize, n: usize, pad: usize, mode: PaddingMode) -> Option<usize> {
    let i = p as isize - pad as isize;
    let n = n as isize;
    if (0..n).contains(&i) {
        return Some(i as usize);
    }
    match mode {
        PaddingMode::Zeros => None,
        PaddingMode::Reflect => {
            let r = if i < 0 { -i } else { 2 * (n - 1) - i };
            (0..n).contains(&r).then_some(r as usize)
        }
    }
}

/// The `size x size` window at `(top, left)` of a `[C, H, W]` image padded by `pad` on every
/// side.
pub fn crop_padded(
    image: &[u8],
    [c, h, w]: [usize; 3],
    pad: usize,
    mode: PaddingMode,
    size: usize,
    (top, left): (usize, usize),
) -> Vec<u8> {
    let mut out = vec![0u8; c * size * size];
    for ch in 0..c {
        let plane = &image[ch * h * w..(ch + 1) * h * w];
        for y in 0..size {
            let Some(sy) = padded_source(top + y, h, pad, mode) else {
                continue;
            };
            let dst = &mut out[(ch * size + y) * size..(ch * size + y + 1) * size];
            for (x, d) in dst.iter_mut().enumerate() {
                if let Some(sx) = padded_source(left + x, w, pad, mode) {
                    *d = plane[sy * w + sx];
                }
            }
        }
    }
    out
}

/// Applies `steps` in order to one `[C, H, W]` image, drawing from `rng` (a flip draws one
/// uniform number; a crop draws its row offset, then its column offset); returns the image and
/// its new shape.
pub fn apply(
    steps: &[Augment],
    image: &[u8],
    shape: [usize; 3],
    rng: &mut impl Rng,
) -> (Vec<u8>, [usize; 3]) {
    let (mut img, mut shape) = (image.to_vec(), shape);
    for step in steps {
        match *step {
            Augment::HorizontalFlip { p } => {
                if rng.random::<f64>() < p {
                    img = flip_horizontal(&img, shape);
                }
            }
            Augment::RandomCrop {
                size,
                padding,
                padding_mode,
            } => {
                let [c, h, w] = shape;
                let top = rng.random_range(0..=h + 2 * padding - size);
                let left = rng.random_range(0..=w + 2 * padding - size);
                img = crop_padded(&img, shape, padding, padding_mode, size, (top, left));
                shape = [c, size, size];
            }
        }
    }
    (img, shape)
}

/// The image shape after `steps` (crops change it), or an error naming the step that does not
/// fit.
pub fn output_shape(steps: &[Augment], shape: [usize; 3]) -> Result<[usize; 3], String> {
    let mut shape = shape;
    for (i, step) in steps.iter().enumerate() {
        match *step {
            Augment::HorizontalFlip { p } => {
                if !(0.0..=1.0).contains(&p) {
                    return Err(format!(
                        "data.augment[{i}].p: {p}; use a probability in [0, 1]"
                    ));
                }
            }
            Augment::RandomCrop {
                size,
                padding,
                padding_mode,
            } => {
                let [c, h, w] = shape;
                if size == 0 || size > h.min(w) + 2 * padding {
                    return Err(format!(
                        "data.augment[{i}].size: {size} does not fit a {h}x{w} image padded by {padding}"
                    ));
                }
                if padding_mode == PaddingMode::Reflect && padding >= h.min(w) {
                    return Err(format!(
                        "data.augment[{i}].padding: reflect padding of {padding} needs images wider than that ({h}x{w}); use zeros or a smaller padding"
                    ));
                }
                shape = [c, size, size];
            }
        }
    }
    Ok(shape)
}

/// Writes `(x / 255 - mean[c]) / std[c]` of a `[C, H, W]` image into `out`.
pub fn normalize_into(
    image: &[u8],
    [c, h, w]: [usize; 3],
    norm: &ChannelNormalize,
    out: &mut [f32],
) {
    let plane = h * w;
    for ch in 0..c {
        let (mean, std) = (norm.mean[ch], norm.std[ch]);
        let scale = 1.0 / (255.0 * std);
        let shift = -mean / std;
        for (o, &p) in out[ch * plane..(ch + 1) * plane]
            .iter_mut()
            .zip(&image[ch * plane..(ch + 1) * plane])
        {
            *o = (f64::from(p) * scale + shift) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn arange(n: usize) -> Vec<u8> {
        (0..n).map(|v| v as u8).collect()
    }

    #[test]
    fn a_flip_is_an_exact_mirror_and_its_own_inverse() {
        let img = arange(3 * 4 * 5);
        let flipped = flip_horizontal(&img, [3, 4, 5]);
        for c in 0..3 {
            for y in 0..4 {
                for x in 0..5 {
                    assert_eq!(flipped[(c * 4 + y) * 5 + x], img[(c * 4 + y) * 5 + 4 - x]);
                }
            }
        }
        assert_eq!(flip_horizontal(&flipped, [3, 4, 5]), img);
    }

    #[test]
    fn reflect_padding_matches_torch() {
        // torch.nn.functional.pad(arange(30).reshape(1,1,5,6), (4,4,4,4), mode='reflect'), rows 0, 4, 12
        let golden: [(usize, [u8; 14]); 3] = [
            (0, [28, 27, 26, 25, 24, 25, 26, 27, 28, 29, 28, 27, 26, 25]),
            (4, [4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 4, 3, 2, 1]),
            (12, [4, 3, 2, 1, 0, 1, 2, 3, 4, 5, 4, 3, 2, 1]),
        ];
        let img = arange(30);
        for (row, want) in golden {
            let got: Vec<u8> = (0..14)
                .map(|col| {
                    let y = padded_source(row, 5, 4, PaddingMode::Reflect).unwrap();
                    let x = padded_source(col, 6, 4, PaddingMode::Reflect).unwrap();
                    img[y * 6 + x]
                })
                .collect();
            assert_eq!(got, want, "padded row {row}");
        }
        // pad(arange(9).reshape(1,1,3,3), (2,2,2,2), mode='reflect'), the whole 7x7
        let torch: [[u8; 7]; 7] = [
            [8, 7, 6, 7, 8, 7, 6],
            [5, 4, 3, 4, 5, 4, 3],
            [2, 1, 0, 1, 2, 1, 0],
            [5, 4, 3, 4, 5, 4, 3],
            [8, 7, 6, 7, 8, 7, 6],
            [5, 4, 3, 4, 5, 4, 3],
            [2, 1, 0, 1, 2, 1, 0],
        ];
        let padded = crop_padded(&arange(9), [1, 3, 3], 2, PaddingMode::Reflect, 7, (0, 0));
        assert_eq!(padded, torch.concat());
        let zeros = crop_padded(&arange(9), [1, 3, 3], 1, PaddingMode::Zeros, 5, (0, 0));
        assert_eq!(&zeros[..6], &[0, 0, 0, 0, 0, 0]);
        assert_eq!(&zeros[6..9], &[0, 1, 2]);
    }

    #[test]
    fn crop_offsets_are_uniform_over_0_to_8_on_both_axes() {
        let steps = [Augment::RandomCrop {
            size: 32,
            padding: 4,
            padding_mode: PaddingMode::Reflect,
        }];
        // an image whose pixel (y, x) encodes y·32 + x in two channels reveals the offsets
        let img: Vec<u8> = (0..2 * 32 * 32)
            .map(|i| {
                if i < 1024 {
                    (i / 32) as u8
                } else {
                    (i % 32) as u8
                }
            })
            .collect();
        let draws = 18_000;
        let mut counts = [[0usize; 9]; 2];
        for n in 0..draws {
            let (out, shape) = apply(&steps, &img, [2, 32, 32], &mut image_rng(n as u64, 0));
            assert_eq!(shape, [2, 32, 32]);
            // pixel (4, 4) of the crop comes from padded (top + 4, left + 4) = source (top, left)
            let (top, left) = (out[4 * 32 + 4] as usize, out[1024 + 4 * 32 + 4] as usize);
            counts[0][top] += 1;
            counts[1][left] += 1;
        }
        let expected = draws as f64 / 9.0;
        for axis in counts {
            let chi2: f64 = axis
                .iter()
                .map(|&c| (c as f64 - expected).powi(2) / expected)
                .sum();
            // 8 degrees of freedom: P(chi2 > 26.1) = 0.001
            assert!(chi2 < 26.1, "offset counts {axis:?}, chi2 {chi2}");
            assert!(axis.iter().all(|&c| c > 0));
        }
    }

    #[test]
    fn the_pipeline_is_flip_then_crop_then_normalise() {
        let steps = [
            Augment::HorizontalFlip { p: 0.5 },
            Augment::RandomCrop {
                size: 32,
                padding: 4,
                padding_mode: PaddingMode::Reflect,
            },
        ];
        let img: Vec<u8> = (0..3 * 32 * 32).map(|i| (i * 7 % 251) as u8).collect();
        let norm = ChannelNormalize::default();
        let mut flips = 0;
        for seed in 0..64 {
            let (got, _) = apply(&steps, &img, [3, 32, 32], &mut image_rng(seed, 3));
            // the same draws by hand: one uniform for the flip, then the row and column offsets
            let mut rng = image_rng(seed, 3);
            let flip = rng.random::<f64>() < 0.5;
            let (top, left) = (rng.random_range(0..=8usize), rng.random_range(0..=8usize));
            let base = if flip {
                flip_horizontal(&img, [3, 32, 32])
            } else {
                img.clone()
            };
            let want = crop_padded(&base, [3, 32, 32], 4, PaddingMode::Reflect, 32, (top, left));
            assert_eq!(got, want, "seed {seed}");
            flips += usize::from(flip);
            let mut a = vec![0f32; got.len()];
            normalize_into(&got, [3, 32, 32], &norm, &mut a);
            assert!((a[0] - ((got[0] as f64 / 255.0 - 0.4914) / 0.2470) as f32).abs() < 1e-6);
            assert!((a[2048] - ((got[2048] as f64 / 255.0 - 0.4465) / 0.2616) as f32).abs() < 1e-6);
        }
        assert!((16..=48).contains(&flips), "{flips} flips in 64");
    }
}
