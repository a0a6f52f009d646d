#!/usr/bin/env bash
# Regenerates every image in gallery/style (run from the repository root; ../shared/data beside it).
set -euo pipefail
SQ=../shared/data/imagenet/squeezenet1_0_imagenet_deepcompression.pth
MB=../shared/data/imagenet/mobilenet_v2_imagenet_dequantized.pth
P=../shared/data/photos
S=../shared/data/style
G=gallery/style
cnnlens style $P/chelsea.png $S/starry_night.jpg --model squeezenet1_0 --weights $SQ --size 224 --steps 120 -o $G/chelsea-starry_night-squeezenet.png --overwrite
cnnlens style $P/chelsea.png $S/starry_night.jpg --model mobilenet_v2 --weights $MB --size 224 --steps 120 -o $G/chelsea-starry_night-mobilenet.png --overwrite
cnnlens style $P/china.jpg $S/the_scream.jpg --model squeezenet1_0 --weights $SQ --size 224 --steps 120 -o $G/china-the_scream-squeezenet.png --overwrite
cnnlens style $P/rocket.jpg $S/shipwreck.jpg --model mobilenet_v2 --weights $MB --size 224 --steps 120 -o $G/rocket-shipwreck-mobilenet.png --overwrite
cnnlens style $P/chelsea.png $S/starry_night.jpg --model squeezenet1_0 --weights $SQ --size 224 --steps 120 --preserve-color -o $G/chelsea-starry_night-squeezenet-colors.png --overwrite
cnnlens style $P/chelsea.png $S/starry_night.jpg $S/the_scream.jpg --style-blend 0.5,0.5 --model squeezenet1_0 --weights $SQ --size 224 --steps 120 -o $G/chelsea-blend-squeezenet.png --overwrite
for L in features.1 features.4 features.7 features.10 features.12; do
  cnnlens invert $P/chelsea.png --model squeezenet1_0 --weights $SQ --layer $L --size 160 --steps 100 -o $G/invert-chelsea-squeezenet-$L.png --overwrite
done
for L in features.2.conv.0 features.7.conv.0 features.14.conv.0; do
  cnnlens invert $P/grace_hopper.jpg --model mobilenet_v2 --weights $MB --layer $L --size 160 --steps 100 -o $G/invert-grace_hopper-mobilenet-$L.png --overwrite
done
