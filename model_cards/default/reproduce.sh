# 1. Train (on 2 cores of an AMD EPYC with AVX512-BF16; bf16 autocast, channels-last; see training.md for the time)
dcicnn fit --config configs/default.yaml --config configs/blind.yaml --trainer.max_steps=5500 \
    --trainer.default_root_dir=runs/blind-v1 --trainer.logger.init_args.save_dir=runs/blind-v1
# 2. Ship the best weights by validation PSNR on McMaster crops (exported by the run to runs/blind-v1/hub)
cp runs/blind-v1/hub/config.json runs/blind-v1/hub/model.safetensors dcicnn/pretrained/default/
# 3. Evaluate on whole images, every protocol (bf16 inference, the default where the CPU has it); classical
#    baselines on Kodak24 only
P="jpeg-q10 jpeg-q20 jpeg-q30 jpeg-q40 noise-s15 noise-s25 noise-s50 blur-s1+jpeg-q30 blur-s2+jpeg-q30 mixed-light
   mixed-heavy paper-32 paper-64 paper-128 paper-256"
dcicnn evaluate --model dcicnn/pretrained/default --data ../shared/data/kodak24 -o eval/kodak24 --dtype bf16 --protocol $P
dcicnn evaluate --model dcicnn/pretrained/default --data ../shared/data/mcmaster -o eval/mcmaster --dtype bf16 \
    --no-classical --protocol $P
# 4. Write this card
dcicnn card dcicnn/pretrained/default --name dcicnn-blind-cpu-v1 \
    --results kodak24=eval/kodak24/results.json mcmaster=eval/mcmaster/results.json \
    --training model_cards/default/training.md --reproduce model_cards/default/reproduce.sh --datasets bsds500
