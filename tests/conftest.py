import matplotlib
import torch

matplotlib.use("Agg")
torch.set_num_threads(2)
