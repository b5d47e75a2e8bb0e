"""The first five minutes: ``bench demo`` trains three methods at the small configuration on offline
Moving MNIST, renders the report, and says where it is and what to run next.

It is exactly ``bench run --methods simvp,tau,convlstm --datasets mmnist --tiny --sizes
train=768,val=128,test=64 --epochs 4`` followed by ``bench report`` on the same directory (the
command prints it). Nothing in it is a separate concept: ``--tiny`` is the small configuration
(each method's ``tiny`` widths with its paper training recipe), and the budget is ordinary
``--sizes``/``--epochs``. Every result is labelled tiny, and the report never ranks it with
paper-size runs or presents it as comparable with the papers.

How the budget was chosen (measured on the 2-core CPU these instructions target, idle, 2 threads):
train samples/s of the tiny models are about 45 (SimVP), 27 (TAU) and 190 (ConvLSTM), so 4 epochs
of 768 generated sequences take about 70 s, 115 s and 16 s of training, plus validation after every
epoch, the test, the FLOP count and the fps timing. All three methods share sizes and epochs so
that they land in one comparison table (the report groups runs by budget). On that machine the
validation MSE (raw predictions, summed over the 64x64 frame) falls from about 150 (all-black
output scores about 148) to about 95-105 after 4 epochs; the per-frame curve shows the first
predicted frame at about 35-40, i.e. the digits are predicted as blurred shapes at the right place
for the first frames and fade after that. Learning more takes more than a CPU minute per method:
at these widths the validation MSE keeps falling slowly (SimVP reached 92.7 after 12,000
sequences, 190 s), and the paper configurations need a GPU (``bench run ... --device cuda``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoRecipe:
    methods: str = "simvp,tau,convlstm"
    dataset: str = "mmnist"
    sizes: str = "train=768,val=128,test=64"
    epochs: int = 4

    def run_command(self, results: str) -> str:
        return (f"bench run --methods {self.methods} --datasets {self.dataset} --tiny --sizes {self.sizes} "
                f"--epochs {self.epochs} --results {results}")


DEMO = DemoRecipe()

NEXT_STEP = ("bench run --methods simvp,tau,convlstm --datasets mmnist --device cuda "
             "(the paper configurations; add --seeds 0,1,2 and --epochs N for a real comparison)")
