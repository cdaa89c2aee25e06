"""Networks: SPADE generator, image encoder, multi-scale discriminator, baselines; the SPADEModel bundle."""
from spadekit.models.baselines import ConcatGenerator, Pix2PixHDGenerator
from spadekit.models.discriminator import MultiscaleDiscriminator, PatchDiscriminator
from spadekit.models.encoder import ImageEncoder, reparameterize
from spadekit.models.generator import SPADEGenerator, random_latents
from spadekit.models.optimize import inference_copy, optimize_for_inference
from spadekit.models.registry import GENERATORS, generator_class
from spadekit.models.spade_model import SPADEModel

__all__ = [
    "GENERATORS", "ConcatGenerator", "ImageEncoder", "MultiscaleDiscriminator", "PatchDiscriminator", "Pix2PixHDGenerator",
    "SPADEGenerator", "SPADEModel", "generator_class", "inference_copy", "optimize_for_inference", "random_latents",
    "reparameterize",
]
