"""An accuracy predictor for the front search, as once-for-all screens subnets: scikit-learn's ridge regression on
the one-hot tokens, fitted on the subnets already evaluated. It only decides which drawn subnets are worth an
evaluation; a predicted metric is never recorded as a reward."""

from typing import Dict, List, Optional, Sequence

import numpy as np
from scipy.stats import kendalltau
from sklearn.linear_model import Ridge
from sklearn.model_selection import KFold

FOLDS = 5


class AccuracyPredictor:
    """metric ~ ridge(one-hot tokens); `fit` again whenever more subnets are evaluated."""

    def __init__(self, range_table: Sequence[int], alpha: float = 1.0) -> None:
        self.offsets = np.cumsum([0, *range_table[:-1]])
        self.width = int(sum(range_table))
        self.alpha = alpha
        self.model: Optional[Ridge] = None

    def features(self, tokens_list: Sequence[Sequence[int]]) -> np.ndarray:
        x = np.zeros((len(tokens_list), self.width), dtype=np.float64)
        for row, tokens in enumerate(tokens_list):
            x[row, self.offsets + np.asarray(tokens)] = 1.0
        return x

    def fit(self, tokens_list: Sequence[Sequence[int]], metrics: Sequence[float]) -> "AccuracyPredictor":
        self.model = Ridge(alpha=self.alpha).fit(self.features(tokens_list), np.asarray(metrics, dtype=np.float64))
        return self

    def predict(self, tokens: Sequence[int]) -> float:
        if self.model is None:
            raise RuntimeError("fit the predictor first")
        return float(self.model.predict(self.features([tokens]))[0])

    def held_out_tau(
        self, tokens_list: Sequence[Sequence[int]], metrics: Sequence[float]
    ) -> Dict[str, Optional[float]]:
        """Kendall tau between measured and predicted metrics of subnets left out of the fit (5-fold)."""
        if len(tokens_list) < 2 * FOLDS:
            return {"kendall_tau": None, "p_value": None, "subnets": len(tokens_list)}
        x, y = self.features(tokens_list), np.asarray(metrics, dtype=np.float64)
        predicted: List[float] = [0.0] * len(y)
        for train, test in KFold(FOLDS, shuffle=True, random_state=0).split(x):
            fold = Ridge(alpha=self.alpha).fit(x[train], y[train])
            for index, value in zip(test, fold.predict(x[test])):
                predicted[index] = float(value)
        tau = kendalltau(y, predicted)
        return {"kendall_tau": float(tau.statistic), "p_value": float(tau.pvalue), "subnets": len(y)}
