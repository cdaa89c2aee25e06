"""Networks: SPADE generator, image encoder, multi-scale discriminator, baselines; the SPADEModel bundle."""
from spadekit.models.baselines import ConcatGenerator, Pix2PixHDGenerator
from spadekit.models.discriminator import MultiscaleDiscriminator, PatchDiscriminator
from spadekit.models.encoder import ImageEncoder, reparameterize
from spadekit.models.generator import SPADEGenerator

# name -> generator class (config.generator.arch); baselines register here too.
GENERATORS = {"spade": SPADEGenerator, "pix2pixhd": Pix2PixHDGenerator, "concat": ConcatGenerator}

from spadekit.models.spade_model import SPADEModel  # noqa: E402

__all__ = [
    "GENERATORS", "ConcatGenerator", "ImageEncoder", "Pix2PixHDGenerator", "MultiscaleDiscriminator", "PatchDiscriminator", "SPADEGenerator", "SPADEModel", "reparameterize",
]
