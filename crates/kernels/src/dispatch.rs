//! Run-time selection between a baseline and an AVX2+FMA build of the same loop nest.

/// Defines `$vis fn $name(args) -> ret` that calls `$imp(args)` compiled with AVX2+FMA when the
/// CPU has them, else the baseline build of `$imp`. `$imp` should be `#[inline(always)]` so
/// that its loops are compiled inside the AVX2 function (and so vectorised for it).
#[macro_export]
macro_rules! dispatch {
    ($(#[$meta:meta])* $vis:vis fn $name:ident $(<$($lt:lifetime),+>)? ($($arg:ident: $ty:ty),* $(,)?) $(-> $ret:ty)? => $imp:path) => {
        $(#[$meta])*
        #[allow(clippy::too_many_arguments)]
        $vis fn $name $(<$($lt),+>)? ($($arg: $ty),*) $(-> $ret)? {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx2,fma")]
                #[allow(clippy::too_many_arguments)]
                unsafe fn avx2 $(<$($lt),+>)? ($($arg: $ty),*) $(-> $ret)? {
                    $imp($($arg),*)
                }
                if std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
                {
                    // SAFETY: the CPU has the features `avx2` was compiled for.
                    return unsafe { avx2($($arg),*) };
                }
            }
            $imp($($arg),*)
        }
    };
}

#[cfg(test)]
mod tests {
    #[inline(always)]
    fn add_impl(a: &mut [f32], b: &[f32]) -> usize {
        for (x, y) in a.iter_mut().zip(b) {
            *x += *y;
        }
        a.len()
    }

    dispatch!(fn add<'a>(a: &'a mut [f32], b: &'a [f32]) -> usize => add_impl);

    #[test]
    fn dispatched_function_runs_the_implementation() {
        let mut a = vec![1.0f32; 19];
        let b: Vec<f32> = (0..19).map(|i| i as f32).collect();
        assert_eq!(add(&mut a, &b), 19);
        assert_eq!(a[18], 19.0);
    }
}
