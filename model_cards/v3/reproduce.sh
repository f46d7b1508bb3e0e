# 1. Warm start: the H100 run's blind weights (docs/results/gpu-h100), widened to take the JPEG and noise conditions
#    (new input weights at zero), 1,000 steps with the first v3 mix and the patch noise estimate (on 2 cores of an
#    Intel Xeon with AMX; its best export, at step 1,000, was kept; the run was stopped at step 2,450)
dcicnn fit --config configs/default.yaml --config configs/v3.yaml --data.noise_hint estimate \
    --trainer.max_time 00:02:15:00 --trainer.default_root_dir runs/v3a
#    (the mix of that run: untouched 0.15, JPEG q60-100 0.12, q5-60 0.20, faint noise sigma 0.5-5 0.05, noise 1-55
#    0.20, blur + JPEG q10-95 0.13, blur/noise 1-25/JPEG q10-95 0.15; see git history of configs/v3.yaml)
# 2. v3: configs/v3.yaml as committed, warm-started from run 1's export, 1 h 40 min
dcicnn fit --config configs/default.yaml --config configs/v3.yaml --model.init_from runs/v3a/hub \
    --trainer.max_time 00:01:40:00 --trainer.default_root_dir runs/v3b
# 3. Ship the exported weights (best mean validation PSNR on McMaster crops)
cp runs/v3b/hub/config.json runs/v3b/hub/model.safetensors dcicnn/pretrained/default/
# 4. Evaluate on whole images, every protocol, bf16 (the default on this CPU); each JPEG protocol with the quality
#    restore() reads from the pixels (auto, what an array or PNG gets) and with the one a saved JPEG file carries
P="jpeg-q10 jpeg-q20 jpeg-q30 jpeg-q40 noise-s15 noise-s25 noise-s50 blur-s1+jpeg-q30 blur-s2+jpeg-q30 mixed-light
   mixed-heavy clean jpeg-q50 jpeg-q75 jpeg-q90 jpeg-q95 noise-s5 jpeg-q30+q90 jpeg-q30+resize+q90"
dcicnn evaluate --model dcicnn/pretrained/default --data ../shared/data/kodak24 -o eval/kodak24-v3 --dtype bf16 \
    --no-classical --jpeg-hint auto file none --protocol $P
dcicnn evaluate --model dcicnn/pretrained/default --data ../shared/data/mcmaster -o eval/mcmaster-v3 --dtype bf16 \
    --no-classical --jpeg-hint auto file --protocol $P
python benchmarks/v3_targets.py eval/kodak24-v3/results.json --model "DCI-CNN [auto]" "DCI-CNN [file]" "DCI-CNN [none]"
# 5. Write this card
dcicnn card dcicnn/pretrained/default --name dcicnn-v3 --method "DCI-CNN [auto]" "DCI-CNN [file]" \
    --results kodak24=eval/kodak24-v3/results.json mcmaster=eval/mcmaster-v3/results.json \
    --training model_cards/v3/training.md --reproduce model_cards/v3/reproduce.sh --datasets bsds500
