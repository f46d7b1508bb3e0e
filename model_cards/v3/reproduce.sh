# Three runs on 2 cores of an Intel Xeon with AMX (bf16 autocast, channels-last), each warm-started from the last;
# the configs/v3.yaml of each is in git history (commits 661a402, dcdc3f8, 8e83ee1); the last is the committed one.
# 1. The H100 run's blind weights (docs/results/gpu-h100), widened to take the JPEG and noise conditions (new input
#    weights at zero); the noise hint measured on each 64x64 patch (noise_hint: estimate), faint noise and blur with
#    JPEG up to q95 in the mix. Stopped at step 2,450; its step-1,000 export was kept.
git show 661a402:configs/v3.yaml > /tmp/v3-run1.yaml
dcicnn fit --config configs/default.yaml --config /tmp/v3-run1.yaml --trainer.default_root_dir runs/v3a
# 2. The calibrated noise hint, no noise below sigma 5, blur only with JPEG <= q75; stopped at step 2,000, whose
#    weights (last.ckpt, exported with DCICNN.save_pretrained) were kept
git show dcdc3f8:configs/v3.yaml > /tmp/v3-run2.yaml
dcicnn fit --config configs/default.yaml --config /tmp/v3-run2.yaml --model.init_from runs/v3a/hub \
    --trainer.max_time 00:01:40:00 --trainer.default_root_dir runs/v3b
# 3. v3: blur only with JPEG <= q50; 1 h 15 min; the export with the best mean McMaster validation PSNR
dcicnn fit --config configs/default.yaml --config configs/v3.yaml --model.init_from runs/v3b-2000 \
    --trainer.max_time 00:01:15:00 --trainer.default_root_dir runs/v3c
cp runs/v3c/hub/config.json runs/v3c/hub/model.safetensors dcicnn/pretrained/default/
# 4. Evaluate on whole images, every protocol, bf16 (the default on this CPU); every JPEG protocol with the quality
#    restore() reads from the pixels (auto: what an array or a PNG gets) and with the one a saved JPEG file carries
P="jpeg-q10 jpeg-q20 jpeg-q30 jpeg-q40 noise-s15 noise-s25 noise-s50 blur-s1+jpeg-q30 blur-s2+jpeg-q30 mixed-light
   mixed-heavy clean jpeg-q50 jpeg-q75 jpeg-q90 jpeg-q95 noise-s5 jpeg-q30+q90 jpeg-q30+resize+q90"
dcicnn evaluate --data ../shared/data/kodak24 -o eval/kodak24-v3 --dtype bf16 --no-classical \
    --jpeg-hint auto file --protocol $P
dcicnn evaluate --data ../shared/data/mcmaster -o eval/mcmaster-v3 --dtype bf16 --no-classical \
    --jpeg-hint auto file --protocol $P
python benchmarks/targets.py eval/kodak24-v3/results.json --targets v3 --model "DCI-CNN [auto]" "DCI-CNN [file]"
# 5. This card
dcicnn card dcicnn/pretrained/default --name dcicnn-v3 --method "DCI-CNN [auto]" "DCI-CNN [file]" \
    --results kodak24=eval/kodak24-v3/results.json mcmaster=eval/mcmaster-v3/results.json \
    --training model_cards/v3/training.md --reproduce model_cards/v3/reproduce.sh --datasets bsds500
