"""Evaluation: sample-quality metrics on pluggable features, cached reference statistics, the
probability-flow likelihood, run reports and a hook for training; for sound, a log-mel feature
classifier, YIN pitch and `evaluate_audio`; for video, motion metrics (`video_motion`, `video_run`),
prediction scores (`video_prediction`) and the moving-shapes judge (`moving_shapes_judge`, `moving_shapes_run`).

    from noisecraft.eval import log_likelihood, frechet_distance, kid, precision_recall
    ref = build_reference(train_images, extractor, holdout=test_images)
    evaluate_samples(samples, ref, labels=classes)       # {"fd", "kid", "precision", "recall", ...}
"""

from .audio import (
    AUDIO_METRIC_DIRECTIONS,
    AudioClips,
    AudioReference,
    AudioSet,
    audio_report,
    build_audio_reference,
    evaluate_audio,
    format_audio_report,
    real_halves,
)
from .audio_run import AUDIO_METRICS, evaluate_audio_run, parse_audio_metrics
from .audio_features import (
    AudioClassifierConfig,
    AudioClassifierNet,
    LogMel,
    LogMelConfig,
    fit_audio_features,
    load_audio_features,
    mel_filterbank,
    save_audio_features,
)
from .cache import ReferenceFeatures, data_hash, reference_features, reference_key
from .evaluate import (
    DEFAULT_METRICS,
    METRIC_DIRECTIONS,
    METRIC_KEYS,
    METRICS,
    Reference,
    build_reference,
    default_extractor,
    evaluate_during_training,
    evaluate_nll,
    evaluate_samples,
    parse_metrics,
)
from .features import (
    INCEPTION_FILENAME,
    INCEPTION_URL,
    ClassifierConfig,
    ClassifierNet,
    EvalError,
    FeatureExtractor,
    FitResult,
    InceptionV3,
    Preprocess,
    default_inception_path,
    fit_classifier,
    fit_features,
    inception_extractor,
    load_extractor,
    module_extractor,
    save_extractor,
)
from .likelihood import (
    DataSpan,
    LogLikelihood,
    bin_width,
    bits_per_dim,
    data_span,
    default_probes,
    discrete_log_likelihood,
    log_likelihood,
    quantize,
)
from .metrics import (
    FeatureStats,
    KIDResult,
    NearCopies,
    PrecisionRecall,
    class_accuracy,
    class_coverage,
    class_histogram,
    feature_stats,
    frechet_distance,
    frechet_distance_from_stats,
    kid,
    near_copies,
    nearest_two,
    precision_recall,
)
from ..data.note_names import (
    NoteNameError,
    hz_to_cents_error,
    hz_to_midi,
    midi_to_hz,
    midi_to_note,
    note_class,
    note_to_midi,
    parse_note_class,
)
from .pitch import PITCH_METHODS, PitchAccuracy, PitchEstimate, estimate_f0, estimate_f0_shs, pitch_accuracy
from .report import RUN_EVALUATIONS, evaluate_image_run, evaluate_run, write_report
from .splits import RealSplits, real_splits
from .video_features import fit_frame_classifier, fit_motion_features, load_motion_features
from .video_motion import centroids, fit_bounce, identity_consistency, trajectory_residuals
from .video_prediction import copy_last_frame, extrapolate_centroid, prediction_scores, psnr, ssim
from .video_run import VIDEO_METRICS, evaluate_video_run, parse_video_metrics, video_scores
from .moving_shapes_judge import MovingShapesReading, follow_rates, judge_moving_shapes, read_moving_shapes
from .moving_shapes_run import evaluate_moving_shapes_run

__all__ = [
    "log_likelihood", "discrete_log_likelihood", "bits_per_dim", "quantize", "bin_width", "data_span",
    "default_probes", "LogLikelihood", "DataSpan",
    "FeatureStats", "KIDResult", "PrecisionRecall", "feature_stats", "frechet_distance", "frechet_distance_from_stats",
    "kid", "precision_recall", "class_accuracy", "class_coverage", "class_histogram", "NearCopies", "near_copies",
    "nearest_two",
    "EvalError", "Preprocess", "FeatureExtractor", "ClassifierConfig", "ClassifierNet", "FitResult", "fit_classifier",
    "fit_features", "save_extractor", "load_extractor", "module_extractor", "InceptionV3", "inception_extractor",
    "INCEPTION_FILENAME", "INCEPTION_URL", "default_inception_path",
    "ReferenceFeatures", "reference_features", "reference_key", "data_hash",
    "METRICS", "METRIC_KEYS", "METRIC_DIRECTIONS", "DEFAULT_METRICS", "parse_metrics", "Reference", "build_reference",
    "default_extractor", "evaluate_samples", "evaluate_nll", "evaluate_during_training",
    "RealSplits", "real_splits", "evaluate_run", "evaluate_image_run", "RUN_EVALUATIONS", "write_report",
    "NoteNameError", "note_to_midi", "midi_to_note", "midi_to_hz", "hz_to_midi", "hz_to_cents_error", "parse_note_class",
    "note_class", "PitchEstimate", "PitchAccuracy", "PITCH_METHODS", "estimate_f0", "estimate_f0_shs", "pitch_accuracy",
    "mel_filterbank", "LogMelConfig", "LogMel", "AudioClassifierConfig", "AudioClassifierNet", "fit_audio_features",
    "save_audio_features", "load_audio_features",
    "AudioSet", "AudioClips", "AudioReference", "build_audio_reference", "audio_report", "evaluate_audio",
    "format_audio_report", "real_halves", "AUDIO_METRIC_DIRECTIONS", "AUDIO_METRICS", "parse_audio_metrics",
    "evaluate_audio_run",
    "centroids", "fit_bounce", "trajectory_residuals", "identity_consistency", "fit_frame_classifier",
    "fit_motion_features", "load_motion_features", "psnr", "ssim", "copy_last_frame", "extrapolate_centroid",
    "prediction_scores", "VIDEO_METRICS", "parse_video_metrics", "video_scores", "evaluate_video_run",
    "MovingShapesReading", "read_moving_shapes", "judge_moving_shapes", "follow_rates", "evaluate_moving_shapes_run",
]
