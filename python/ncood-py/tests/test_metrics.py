"""ncood.metrics against scikit-learn and direct counting (SPEC 5); ncood.softmax_scores against
torch's softmax."""
import numpy as np
import pytest
import torch
from conftest import t
from reference import fpr95, topn
from sklearn.metrics import average_precision_score, roc_auc_score

import ncood


def check(id_conf: np.ndarray, ood_conf: np.ndarray) -> None:
    m = ncood.metrics(t(id_conf), t(ood_conf))
    is_ood = np.r_[np.zeros(len(id_conf)), np.ones(len(ood_conf))]
    conf = np.r_[id_conf, ood_conf].astype(np.float64)
    np.testing.assert_allclose(m["auroc"], roc_auc_score(is_ood, -conf), rtol=1e-12)
    np.testing.assert_allclose(m["aupr_out"], average_precision_score(is_ood, -conf), rtol=1e-12)
    np.testing.assert_allclose(m["aupr_in"], average_precision_score(1 - is_ood, conf), rtol=1e-12)
    assert m["fpr95_ood_positive"] == fpr95(-ood_conf.astype(np.float64), -id_conf.astype(np.float64))
    assert m["fpr95_id_positive"] == fpr95(id_conf.astype(np.float64), ood_conf.astype(np.float64))
    assert m["topn_false_positives"] == topn(id_conf, ood_conf)


@pytest.mark.parametrize("seed", range(5))
def test_random_scores_with_ties_match_sklearn(seed):
    g = np.random.default_rng(seed)
    # Rounded to a coarse grid so that ties within and across the two sets are common.
    check(np.round(g.normal(1.0, 1.0, 300), 1), np.round(g.normal(0.0, 1.0, 170), 1).astype(np.float32))


def test_real_gda_scores_match_sklearn(real):
    g = ncood.GDA.fit(t(real.val.normalized), t(real.val.labels))
    check(g.score(t(real.test.normalized)).numpy(), g.score(t(real.ood.normalized)).numpy())


def test_perfect_separation():
    m = ncood.metrics(torch.tensor([2.0, 3.0]), torch.tensor([0.0, 1.0]))
    assert m == {"auroc": 1.0, "aupr_in": 1.0, "aupr_out": 1.0, "fpr95_ood_positive": 0.0,
                 "fpr95_id_positive": 0.0, "topn_false_positives": 0}


def test_metric_errors():
    with pytest.raises(ncood.NcoodError, match="OoD scores: value nan is not finite at row 1|OoD scores: value NaN is not finite at row 1"):
        ncood.metrics(torch.ones(3), torch.tensor([0.0, float("nan")]))
    with pytest.raises(ncood.NcoodError, match="ID scores: expected a non-empty N float tensor"):
        ncood.metrics(torch.ones(0), torch.ones(3))
    with pytest.raises(ncood.NcoodError, match="ID scores: expected a non-empty N float tensor"):
        ncood.metrics(torch.ones(3, 1), torch.ones(3))


@pytest.mark.parametrize("temperature", [1.0, 2.5])
def test_softmax_scores_match_torch(temperature):
    logits = torch.randn(50, 7, generator=torch.Generator().manual_seed(3), dtype=torch.float32)
    s = ncood.softmax_scores(logits, temperature)
    l64 = logits.double() / temperature
    p = l64.softmax(1)
    torch.testing.assert_close(s["msp"], p.max(1).values, rtol=1e-12, atol=0)
    torch.testing.assert_close(s["max_logit"], logits.double().max(1).values, rtol=0, atol=0)
    torch.testing.assert_close(s["neg_entropy"], (p * p.log()).sum(1), rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(s["energy"], temperature * l64.logsumexp(1), rtol=1e-12, atol=0)
    with pytest.raises(ncood.NcoodError, match="temperature: 0; expected a finite value > 0"):
        ncood.softmax_scores(logits, 0.0)
