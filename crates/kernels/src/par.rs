//! Splitting independent work over the rayon pool: each worker gets one contiguous range of
//! outputs, so the result is the same for any number of threads.

use std::ops::Range;

/// Number of workers to use for `len` independent items of which each worker should get at
/// least `min_per_worker`.
pub fn workers(len: usize, min_per_worker: usize) -> usize {
    let by_size = len / min_per_worker.max(1);
    rayon::current_num_threads().min(by_size).max(1)
}

/// Splits `0..len` into `parts` contiguous ranges whose starts are multiples of `align` (except
/// that the last range ends at `len`).
pub fn ranges(len: usize, parts: usize, align: usize) -> Vec<Range<usize>> {
    let align = align.max(1);
    let parts = parts.max(1);
    let per = len.div_ceil(parts).div_ceil(align) * align;
    (0..parts)
        .map(|i| (i * per).min(len)..((i + 1) * per).min(len))
        .filter(|r| !r.is_empty())
        .collect()
}

/// Runs `f` on disjoint contiguous ranges of `0..len` in parallel (at least `min_per_worker`
/// items per worker, starts aligned to `align`).
pub fn for_ranges<F>(len: usize, min_per_worker: usize, align: usize, f: F)
where
    F: Fn(Range<usize>) + Sync,
{
    let parts = ranges(len, workers(len, min_per_worker), align);
    match parts.as_slice() {
        [] => {}
        [only] => f(only.clone()),
        _ => rayon::scope(|s| {
            for r in parts {
                let f = &f;
                s.spawn(move |_| f(r));
            }
        }),
    }
}

/// Runs `f` on a worker of the rayon pool and returns its result (directly when already on
/// one).
///
/// A parallel kernel called from outside the pool hands its whole job to the workers and
/// sleeps until they finish: a cross-thread wake-up and a sleep on every call, about a fifth
/// of the FFNN forward pass in `autoresearch bench`. Called from a worker, the kernel runs one
/// share itself and leaves the others to idle workers, which are still spinning between the
/// ops of a step.
/// Wrap a loop of many small ops (a training or evaluation loop) in it, not each op.
pub fn on_pool<R, F>(f: F) -> R
where
    R: Send,
    F: FnOnce() -> R + Send,
{
    match rayon::current_thread_index() {
        Some(_) => f(),
        None => rayon::scope(|_| f()),
    }
}

/// Runs `f(range, chunk)` on disjoint row blocks of `out` (rows of `row_len` elements) in
/// parallel; `chunk` is `out[range.start * row_len..range.end * row_len]`.
pub fn for_row_chunks<F>(out: &mut [f32], row_len: usize, min_rows: usize, f: F)
where
    F: Fn(Range<usize>, &mut [f32]) + Sync,
{
    let rows = out.len().checked_div(row_len).unwrap_or(0);
    let parts = ranges(rows, workers(rows, min_rows), 1);
    if parts.len() <= 1 {
        f(0..rows, out);
        return;
    }
    rayon::scope(|s| {
        let mut rest = out;
        for r in parts {
            let (chunk, tail) = rest.split_at_mut((r.end - r.start) * row_len);
            rest = tail;
            let f = &f;
            s.spawn(move |_| f(r, chunk));
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_cover_everything_once_with_aligned_starts() {
        for (len, parts, align) in [(10, 3, 1), (10, 3, 4), (0, 2, 1), (7, 8, 1), (100, 2, 8)] {
            let rs = ranges(len, parts, align);
            let mut next = 0;
            for r in &rs {
                assert_eq!(r.start, next);
                assert_eq!(r.start % align, 0);
                next = r.end;
            }
            assert_eq!(next, len);
        }
    }

    #[test]
    fn on_pool_runs_on_a_worker_and_returns_the_result() {
        assert_eq!(rayon::current_thread_index(), None);
        let (index, value) = on_pool(|| (rayon::current_thread_index(), on_pool(|| 41) + 1));
        assert!(index.is_some());
        assert_eq!(value, 42);
    }

    #[test]
    fn row_chunks_see_their_own_rows() {
        let mut out = vec![0.0f32; 6 * 5];
        for_row_chunks(&mut out, 5, 1, |rows, chunk| {
            for (i, row) in chunk.chunks_mut(5).enumerate() {
                row.fill((rows.start + i) as f32);
            }
        });
        for (i, row) in out.chunks(5).enumerate() {
            assert!(row.iter().all(|&v| v == i as f32));
        }
    }
}
