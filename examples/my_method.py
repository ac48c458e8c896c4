"""A user's own imputer (examples/config.yaml): each zero becomes the mean of the cell's k nearest neighbours."""
import numpy as np
from sklearn.neighbors import NearestNeighbors


def impute(adata, seed=0, device="cpu", k=10):
    X = adata.X.toarray()  # observed counts, cells x genes (all the method is given)
    logX = np.log1p(X / np.maximum(X.sum(1, keepdims=True), 1) * 1e4)
    idx = NearestNeighbors(n_neighbors=k).fit(logX).kneighbors(return_distance=False)
    return np.where(X > 0, X, X[idx].mean(axis=1))  # count scale, same cells and genes
