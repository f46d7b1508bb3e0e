# 1. Here (any machine with pip and ../shared/data): wheels for the GPU machine and the data, into .device/
bash benchmarks/device/prepare.sh
# 2. On the GPU machine (repo root, .device/ carried along): 4 minutes from the bundled default, then 2:50 more
#    from that run's best weights (copied into .device/warm/ before the second run)
OUT=out1 RECIPE=blind bash benchmarks/device/train.sh
mkdir -p .device/warm && cp out1/hub/* .device/warm/
OUT=out2 RECIPE=blind INIT_FROM=.device/warm TRAIN_TIME=00:00:02:50 bash benchmarks/device/train.sh --data.num_workers 15
# 3. Here: evaluate beside the bundled default on whole images, every protocol (McMaster in fp32, Kodak24 in bf16);
#    each model is named after its folder
cp -r out1/hub gpu-a && cp -r out2/hub gpu-b
P="jpeg-q10 jpeg-q20 jpeg-q30 jpeg-q40 noise-s15 noise-s25 noise-s50 blur-s1+jpeg-q30 blur-s2+jpeg-q30 mixed-light
   mixed-heavy clean jpeg-q50 jpeg-q75 jpeg-q90 jpeg-q95 noise-s5"
dcicnn evaluate --model dcicnn/pretrained/default --model gpu-a --model gpu-b --data ../shared/data/mcmaster \
    --protocol $P --no-classical -o eval/mcmaster-gpu
dcicnn evaluate --model dcicnn/pretrained/default --model gpu-b --data ../shared/data/kodak24 \
    --protocol $P --no-classical --dtype bf16 -o eval/kodak24-gpu
python benchmarks/results_table.py eval/kodak24-gpu/results.json eval/mcmaster-gpu/results.json --compare \
    --model default gpu-b                                                          # the README's table
# 4. This card
dcicnn card docs/results/gpu-h100 --name dcicnn-blind-h100 --method gpu-b \
    --results kodak24=eval/kodak24-gpu/results.json mcmaster=eval/mcmaster-gpu/results.json \
    --training model_cards/gpu-h100/training.md --reproduce model_cards/gpu-h100/reproduce.sh --datasets bsds500
