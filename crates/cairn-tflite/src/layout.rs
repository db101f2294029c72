//! NHWC (TFLite) and NCHW (Cairn's kernels).
//!
//! Every 4-D activation has one *primary* layout in the graph: operators that Cairn runs in
//! NCHW (convolutions, pools, element-wise ops, concat, pad, reductions, resize) write NCHW,
//! and read NCHW; operators whose meaning depends on the memory order (reshape, fully connected
//! on a flattened 4-D tensor, transpose, gather) read and write the file's NHWC. A value is
//! converted at most once per direction, so a chain of convolutions pays no transpose at all:
//! only the graph's 4-D inputs and outputs (and reshapes of 4-D tensors) do.

/// Where a value's axes are.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Layout {
    /// As the file describes it: NHWC for 4-D activations.
    File,
    /// Channels first: axis 3 of the file's NHWC moved to position 1.
    Nchw,
}

/// `Transpose` permutation from NHWC to NCHW.
pub(crate) const TO_NCHW: [usize; 4] = [0, 3, 1, 2];
/// `Transpose` permutation from NCHW back to NHWC.
pub(crate) const TO_NHWC: [usize; 4] = [0, 2, 3, 1];

/// Where the file's (NHWC) axis `axis` of a 4-D tensor lives in NCHW.
pub(crate) fn nchw_axis(axis: usize) -> usize {
    TO_NHWC[axis]
}

/// A file axis (negative counts from the end) checked against the rank.
pub(crate) fn file_axis(axis: i64, rank: usize) -> Option<usize> {
    let a = if axis < 0 { axis + rank as i64 } else { axis };
    usize::try_from(a).ok().filter(|&a| a < rank)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_map_between_layouts() {
        // N stays, H and W move right by one, C becomes axis 1.
        assert_eq!((0..4).map(nchw_axis).collect::<Vec<_>>(), vec![0, 2, 3, 1]);
        for a in 0..4 {
            assert_eq!(TO_NCHW[nchw_axis(a)], a, "the two permutations are inverses");
        }
        assert_eq!(file_axis(-1, 4), Some(3));
        assert_eq!(file_axis(4, 4), None);
        assert_eq!(file_axis(-5, 4), None);
    }
}
