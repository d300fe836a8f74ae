"""The video motion metrics at the built-in size (32x32, 16 frames, default classifier settings): real
held-out clips (the floors of `noisecraft eval`), three corruptions of them, and the two prediction
baselines (4 frames given). Figures in docs/video.md ("Measured").

    PYTHONPATH=src nice -n 10 python benchmarks/video_eval_floors.py
"""
import json, time, resource, numpy as np, torch
from noisecraft.data import load_moving_digits
from noisecraft.eval import video_run
from noisecraft.eval.video_features import fit_frame_classifier, fit_motion_features, shuffle_frames
from noisecraft.eval.video_run import video_scores
from noisecraft.eval.video_prediction import prediction_scores
from noisecraft.eval.audio import real_halves
from noisecraft.eval.metrics import frechet_distance
torch.set_num_threads(1)
cpu0 = time.process_time()
tr = load_moving_digits(split="train"); te = load_moving_digits(split="test")
fc = fit_frame_classifier(tr.data, tr.labels, tr.class_names, holdout=(te.data, te.labels), steps=video_run.FRAME_STEPS, dataset="moving-digits", use_cache=False)
cpu1 = time.process_time(); print("frame clf held-out", fc.info["held_out_accuracy"], "cpu", cpu1-cpu0, flush=True)
mc = fit_motion_features(tr.data, tr.labels, tr.class_names, holdout=(te.data, te.labels), steps=video_run.MOTION_STEPS, feature_dim=video_run.FEATURE_DIM, dataset="moving-digits", use_cache=False)
cpu2 = time.process_time(); print("motion held-out", mc.info["held_out_accuracy"], "train", mc.info["train_accuracy"], "cpu", cpu2-cpu1, flush=True)
a, b = real_halves(te.labels); x = te.data[torch.from_numpy(b)]; lab = te.labels.numpy()[b]
span = float(te.walls[0,1]-te.walls[0,0]); T = x.shape[2]
ref = mc.features(te.data[torch.from_numpy(a)])
g = torch.Generator().manual_seed(5)
fr = x.clone(); fr[:,:,T//2:] = x[:,:,T//2:T//2+1]
sw = x.clone(); sw[:,:,T//2:] = x.roll(1,0)[:,:,T//2:]
out = {}
for name, clips in (("real (floor)", x), ("shuffled", shuffle_frames(x, g)), ("frozen second half", fr), ("digit swapped half way", sw)):
    s = video_scores(clips, lab, frame_classifier=fc, span=span)
    s["fvd"] = frechet_distance(ref, mc.features(clips))
    out[name] = s; print(name, json.dumps({k: round(v, 4) for k, v in s.items()}), flush=True)
cpu3 = time.process_time()
p = prediction_scores(x[None], x, 4, span=span)  # truth as the only sample: just the baselines matter here
print("baselines keep=4:", json.dumps(p["baselines"]), "cpu", time.process_time()-cpu3)
print("total cpu", time.process_time()-cpu0, "peak MB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss/1024)
