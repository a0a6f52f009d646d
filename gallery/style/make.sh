#!/usr/bin/env bash
# Regenerates every image in gallery/style (run from the repository root, with the development data
# folder ../shared/data beside the checkout).
set -euo pipefail
SQ=../shared/data/imagenet/squeezenet1_0_imagenet_deepcompression.pth
MB=../shared/data/imagenet/mobilenet_v2_imagenet_dequantized.pth
P=../shared/data/photos
S=../shared/data/style
G=gallery/style
# style transfer: the stylized picture alone (--image); -o would write the figure with content and style beside it
cnnlens style $P/chelsea.png $S/starry_night.jpg -m squeezenet1_0 -w $SQ --size 224 --steps 120 --image $G/chelsea-starry_night-squeezenet.png --overwrite
cnnlens style $P/chelsea.png $S/starry_night.jpg -m mobilenet_v2 -w $MB --size 224 --steps 120 --image $G/chelsea-starry_night-mobilenet.png --overwrite
cnnlens style $P/china.jpg $S/the_scream.jpg -m squeezenet1_0 -w $SQ --size 224 --steps 120 --image $G/china-the_scream-squeezenet.png --overwrite
cnnlens style $P/rocket.jpg $S/shipwreck.jpg -m mobilenet_v2 -w $MB --size 224 --steps 120 --image $G/rocket-shipwreck-mobilenet.png --overwrite
cnnlens style $P/chelsea.png $S/starry_night.jpg -m squeezenet1_0 -w $SQ --size 224 --steps 120 --preserve-color --image $G/chelsea-starry_night-squeezenet-colors.png --overwrite
cnnlens style $P/chelsea.png $S/starry_night.jpg $S/the_scream.jpg --style-blend 0.5,0.5 -m squeezenet1_0 -w $SQ --size 224 --steps 120 --image $G/chelsea-blend-squeezenet.png --overwrite
# inversion: the figure, the photo beside what comes back from one layer (default settings: 300 Adam steps with jitter)
for L in features.1 features.4 features.7 features.10 features.12; do
  cnnlens invert $P/chelsea.png -m squeezenet1_0 -w $SQ -l $L --size 160 -o $G/invert-chelsea-squeezenet-$L.png --overwrite
done
for L in features.2.conv.0 features.7.conv.0 features.14.conv.0; do
  cnnlens invert $P/grace_hopper.jpg -m mobilenet_v2 -w $MB -l $L --size 160 -o $G/invert-grace_hopper-mobilenet-$L.png --overwrite
done
