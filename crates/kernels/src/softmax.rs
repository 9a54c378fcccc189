//! Softmax cross-entropy: the mean loss over rows and its gradient, with a numerically stable
//! log-softmax (the row maximum is subtracted before exponentiating).

/// Checks `logits` (`[rows, classes]`) and `labels` (`[rows]`, each `< classes`).
fn check(logits: &[f32], labels: &[u32], classes: usize) -> Result<usize, String> {
    let rows = labels.len();
    if logits.len() != rows * classes {
        return Err(format!(
            "cross-entropy: {} logits for {rows} labels x {classes} classes",
            logits.len()
        ));
    }
    if let Some((i, &l)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= classes)
    {
        return Err(format!(
            "cross-entropy: label {l} of row {i} is not below the {classes} classes"
        ));
    }
    Ok(rows)
}

/// `(max, log Σ exp(z - max))` of one row.
#[inline(always)]
fn row_lse(z: &[f32]) -> (f32, f32) {
    let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let sum: f32 = z.iter().map(|&v| (v - max).exp()).sum();
    (max, sum.ln())
}

/// Mean over rows of `-log softmax(logits[r])[labels[r]]`.
///
/// `logits` is `[rows, classes]` row-major; the row losses are summed in row order (in `f64`).
pub fn cross_entropy_forward(
    logits: &[f32],
    labels: &[u32],
    classes: usize,
) -> Result<f32, String> {
    let rows = check(logits, labels, classes)?;
    if rows == 0 || classes == 0 {
        return Ok(f32::NAN);
    }
    let mut total = 0.0f64;
    for (z, &l) in logits.chunks_exact(classes).zip(labels) {
        let (max, lse) = row_lse(z);
        total += (lse - (z[l as usize] - max)) as f64;
    }
    Ok((total / rows as f64) as f32)
}

/// Gradient of [`cross_entropy_forward`] times `scale` (the gradient of the loss):
/// `out[r, c] = (softmax(logits[r])[c] - [c == labels[r]]) · scale / rows`.
pub fn cross_entropy_backward(
    logits: &[f32],
    labels: &[u32],
    classes: usize,
    scale: f32,
    out: &mut [f32],
) -> Result<(), String> {
    let rows = check(logits, labels, classes)?;
    if out.len() != logits.len() {
        return Err(format!(
            "cross-entropy backward: output holds {} values, logits {}",
            out.len(),
            logits.len()
        ));
    }
    if rows == 0 || classes == 0 {
        return Ok(());
    }
    let s = scale / rows as f32;
    for ((z, o), &l) in logits
        .chunks_exact(classes)
        .zip(out.chunks_exact_mut(classes))
        .zip(labels)
    {
        let (max, lse) = row_lse(z);
        for (ov, &zv) in o.iter_mut().zip(z) {
            *ov = (zv - max - lse).exp() * s;
        }
        o[l as usize] -= s;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loss_and_gradient_match_a_naive_softmax() {
        let (rows, classes) = (7, 5);
        // large offsets check the stability: exp(1000) overflows without the max shift
        let logits: Vec<f32> = (0..rows * classes)
            .map(|i| ((i * 37 % 23) as f32 - 11.0) / 3.0 + if i < classes { 1000.0 } else { 0.0 })
            .collect();
        let labels: Vec<u32> = (0..rows as u32).map(|r| (r * 3) % classes as u32).collect();
        let mut want_loss = 0.0f64;
        let mut want_grad = vec![0.0f64; rows * classes];
        for r in 0..rows {
            let z: Vec<f64> = logits[r * classes..(r + 1) * classes]
                .iter()
                .map(|&v| v as f64)
                .collect();
            let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let sum: f64 = z.iter().map(|v| (v - m).exp()).sum();
            want_loss += -((z[labels[r] as usize] - m).exp() / sum).ln();
            for c in 0..classes {
                let onehot = if c == labels[r] as usize { 1.0 } else { 0.0 };
                want_grad[r * classes + c] = ((z[c] - m).exp() / sum - onehot) * 2.0 / rows as f64;
            }
        }
        want_loss /= rows as f64;
        let loss = cross_entropy_forward(&logits, &labels, classes).unwrap();
        assert!((loss as f64 - want_loss).abs() < 1e-5 * want_loss.abs().max(1.0));
        let mut grad = vec![f32::NAN; rows * classes];
        cross_entropy_backward(&logits, &labels, classes, 2.0, &mut grad).unwrap();
        for (g, w) in grad.iter().zip(&want_grad) {
            assert!((*g as f64 - w).abs() < 1e-6, "{g} vs {w}");
        }
        assert!(cross_entropy_forward(&logits, &[9; 7], classes).is_err());
        assert!(cross_entropy_forward(&logits[1..], &labels, classes).is_err());
    }
}
