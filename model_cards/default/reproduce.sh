# 1. Train (77 minutes on 2 cores of an AMD EPYC with AVX512-BF16; bf16 autocast, channels-last)
dcicnn fit --config configs/default.yaml --config configs/blind.yaml --trainer.max_steps=7000 \
    --trainer.default_root_dir=runs/blind-v0 --trainer.logger.init_args.save_dir=runs/blind-v0
# 2. Ship the best weights by validation PSNR on McMaster crops (exported by the run to runs/blind-v0/hub)
cp runs/blind-v0/hub/config.json runs/blind-v0/hub/model.safetensors dcicnn/pretrained/default/
# 3. Evaluate on the held-out Kodak24 (whole images; bf16 inference, the default where the CPU has it)
dcicnn evaluate --model dcicnn/pretrained/default --data ../shared/data/kodak24 -o eval/kodak24 --dtype bf16 \
    --protocol jpeg-q10 jpeg-q20 jpeg-q30 jpeg-q40 noise-s15 noise-s25 noise-s50 blur-s1+jpeg-q30 \
    blur-s2+jpeg-q30 mixed-light mixed-heavy paper-32 paper-64 paper-128 paper-256
# 4. Write this card
dcicnn card dcicnn/pretrained/default --name dcicnn-blind-cpu-v0 --results kodak24=eval/kodak24/results.json \
    --training model_cards/default/training.md --reproduce model_cards/default/reproduce.sh --datasets bsds500
