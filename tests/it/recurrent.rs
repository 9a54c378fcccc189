//! Recurrent networks on row-wise MNIST (image rows as 28 time steps), trained on a real 5k slice:
//! the spiking SRNN (rate-coded rows, RLeaky) and the non-spiking LSTM both learn within 5 epochs.

use autoresearch::{RunStatus, TrainOptions};

use crate::{compose, tempdir};

/// Trains `experiment` for 5 epochs on the first 5,000 training images (10% held out for
/// validation) and returns its best validation accuracy.
fn five_epochs_on_5k(experiment: &str) -> f64 {
    let runs = tempdir();
    let out = compose(
        experiment,
        runs.path(),
        &["data.limit=5000", "data.test_limit=1000", "epochs=5"],
    )
    .unwrap()
    .train_with(&TrainOptions::default().with_quiet(true))
    .unwrap();
    assert_eq!(out.metrics.status, RunStatus::Completed);
    assert_eq!(out.metrics.epochs_done, 5);
    out.metrics.best_val_acc.unwrap()
}

#[test]
fn srnn_reaches_70_percent_on_row_wise_mnist_in_five_epochs() {
    let acc = five_epochs_on_5k("mnist_srnn_rate");
    assert!(acc >= 0.70, "SRNN val acc {acc}");
}

#[test]
fn lstm_reaches_70_percent_on_row_wise_mnist_in_five_epochs() {
    let acc = five_epochs_on_5k("mnist_lstm_seq");
    assert!(acc >= 0.70, "LSTM val acc {acc}");
}
