# 1. Train v1 from scratch (on 2 cores of an AMD EPYC with AVX512-BF16; bf16 autocast, channels-last; see
#    training.md for the times), keeping the best weights by validation PSNR on McMaster crops in runs/blind-v1/hub
dcicnn fit --config configs/default.yaml --config configs/blind.yaml --trainer.max_steps=5500 \
    --trainer.default_root_dir=runs/blind-v1 --trainer.logger.init_args.save_dir=runs/blind-v1
# 2. Continue from v1's best weights: same recipe, a new warm-up and cosine decay from lr 5e-4, 10,000 steps
dcicnn fit --config configs/default.yaml --config configs/blind.yaml --model.init_from runs/blind-v1/hub \
    --model.lr 0.0005 --trainer.max_steps=10000 --trainer.max_time=00:01:55:00 \
    --trainer.default_root_dir=runs/blind-v2 --trainer.logger.init_args.save_dir=runs/blind-v2
# 3. Ship the best weights by validation PSNR on McMaster crops (exported by the run to runs/blind-v2/hub)
cp runs/blind-v2/hub/config.json runs/blind-v2/hub/model.safetensors dcicnn/pretrained/default/
# 4. Evaluate on whole images, every protocol (bf16 inference, the default where the CPU has it); classical
#    baselines on Kodak24 only; the 8-way self-ensemble on the target protocols
P="jpeg-q10 jpeg-q20 jpeg-q30 jpeg-q40 noise-s15 noise-s25 noise-s50 blur-s1+jpeg-q30 blur-s2+jpeg-q30 mixed-light
   mixed-heavy paper-32 paper-64 paper-128 paper-256"
dcicnn evaluate --model dcicnn/pretrained/default --data ../shared/data/kodak24 -o eval/kodak24 --dtype bf16 --protocol $P
dcicnn evaluate --model dcicnn/pretrained/default --data ../shared/data/mcmaster -o eval/mcmaster --dtype bf16 \
    --no-classical --protocol $P
dcicnn evaluate --model dcicnn/pretrained/default --data ../shared/data/kodak24 -o eval/kodak24-x8 --dtype bf16 \
    --no-classical --ensemble --protocol jpeg-q10 noise-s25 blur-s1+jpeg-q30 blur-s2+jpeg-q30 mixed-light mixed-heavy
python benchmarks/results_table.py eval/kodak24/results.json eval/mcmaster/results.json    # README results table
python benchmarks/results_table.py eval/kodak24-x8/results.json --targets --model DCI-CNN "DCI-CNN x8"
# 5. Write this card
dcicnn card dcicnn/pretrained/default --name dcicnn-blind-cpu-v2 \
    --results kodak24=eval/kodak24/results.json mcmaster=eval/mcmaster/results.json \
    --training model_cards/default/training.md --reproduce model_cards/default/reproduce.sh --datasets bsds500
