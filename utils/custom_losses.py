"""The two trl trainer subclasses the paper's baselines need, each changing only what trl cannot express:

- `MultiNegativeDPOTrainer`: DPO with k rejected items per prompt (S-DPO, DMPO). trl tokenizes the prompt, the chosen
  and the first rejected item as usual; this class tokenizes the other k-1 the same way, stacks all k+1 sequences of a
  batch into one forward pass, takes the reference log-probs from trl (its frozen "ref" adapter or reference copy)
  and applies the multi-negative loss. Logging goes through trl's metrics.
- `WeightedSFTTrainer`: SFT whose per-record loss is multiplied by a per-record weight (genre re-weighted SFT).

Imported only by the training stages, after their input checks (it imports torch and trl).
"""
import torch
import torch.nn.functional as F
from trl import DPOTrainer, SFTTrainer
from trl.data_utils import _tokenize, common_prefix_length


# ------------------------------------------------------------------------------------------------ losses
# Both take the log-ratios Δ = log π(y|x) − log π_ref(y|x) of the chosen item, (B,), and of the k rejected ones,
# (B, k), and return the per-prompt loss, (B,).
def sdpo_loss(chosen: torch.Tensor, rejected: torch.Tensor, beta: float) -> torch.Tensor:
    """S-DPO (softmax DPO, Chen et al. 2024): −log σ(−log Σ_j exp(β(Δ_j − Δ_c))). With k = 1 it is DPO's
    −log σ(β(Δ_c − Δ_1)); logsumexp keeps it finite for large margins."""
    return -F.logsigmoid(-torch.logsumexp(beta * (rejected - chosen[:, None]), dim=1))


def dmpo_loss(chosen: torch.Tensor, rejected: torch.Tensor, beta: float) -> torch.Tensor:
    """DMPO as the SPRec authors' baseline code computes it: −log σ(β Σ_j (Δ_c − Δ_j)), summed over the k negatives."""
    return -F.logsigmoid(beta * (chosen[:, None] - rejected).sum(dim=1))


MULTI_NEGATIVE_LOSSES = {"sdpo": sdpo_loss, "dmpo": dmpo_loss}


# ------------------------------------------------------------------------------------------------ S-DPO, DMPO
class StackNegatives:
    """Wraps trl's preference collator (which makes rows [chosen; rejected] for one negative): calls it once per
    negative and stacks the rows as [chosen (B); rejected_1 (B); ...; rejected_k (B)], right-padded to one width, so
    truncation and masks are exactly trl's."""

    def __init__(self, collate, k: int):
        self.collate, self.k = collate, k

    def __call__(self, examples: list[dict]) -> dict:
        negatives = [[e["rejected_ids"], *e["extra_rejected_ids"]] for e in examples]
        if any(len(n) != self.k for n in negatives):
            raise ValueError(f"every pair needs {self.k} rejected items, as the first pair of the training data has")
        parts = [self.collate([{"prompt_ids": e["prompt_ids"], "chosen_ids": e["chosen_ids"], "rejected_ids": n[j]}
                               for e, n in zip(examples, negatives)]) for j in range(self.k)]
        width = max(p["input_ids"].shape[1] for p in parts)
        b = len(examples)
        out = {}
        for key, fill in (("input_ids", self.collate.pad_token_id), ("attention_mask", 0), ("completion_mask", 0)):
            rows = [parts[0][key][:b]] + [p[key][b:] for p in parts]
            out[key] = torch.cat([F.pad(r, (0, width - r.shape[1]), value=fill) for r in rows])
        return out


class MultiNegativeDPOTrainer(DPOTrainer):
    """trl's DPOTrainer with k rejected items per prompt: dataset rows {prompt, chosen, rejected, extra_rejected}
    (`extra_rejected`: the other k-1 rendered completions, the same k in every row) and `loss` one of
    MULTI_NEGATIVE_LOSSES."""

    def __init__(self, *args, loss: str, train_dataset, **kwargs):
        if loss not in MULTI_NEGATIVE_LOSSES:
            raise ValueError(f"unknown multi-negative loss {loss!r}: one of {', '.join(MULTI_NEGATIVE_LOSSES)}")
        self.multi_negative_loss = MULTI_NEGATIVE_LOSSES[loss]
        self.num_negatives = 1 + len(train_dataset[0]["extra_rejected"])
        super().__init__(*args, train_dataset=train_dataset, **kwargs)
        # The options that change trl's own log-prob computation are not reimplemented here.
        if (self.precompute_ref_logps or self.ld_alpha is not None or self.f_divergence_type != "reverse_kl"
                or self.aux_loss_enabled):
            raise ValueError("MultiNegativeDPOTrainer supports neither precompute_ref_log_probs, ld_alpha, "
                             "f-divergences other than reverse_kl nor a mixture-of-experts auxiliary loss")
        self.data_collator = StackNegatives(self.data_collator, self.num_negatives)

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        """trl tokenizes prompt, chosen and the first rejected item; the other negatives are tokenized here the same
        way (prompt + completion + EOS, split where the prompt's tokens end)."""
        dataset = super()._prepare_dataset(dataset, processing_class, args, dataset_name)
        eos = self._tokenizer.eos_token

        def tokenize_extra(example):
            prompt_ids = example["prompt_ids"]
            fulls = [_tokenize(processing_class, example["prompt"] + r + ("" if r.endswith(eos) else eos))["input_ids"]
                     for r in example["extra_rejected"]]
            # Where a completion's first token merges across the prompt's end, the shared prompt gets shorter and its
            # tail joins every completion (trl does the same for chosen and rejected).
            cut = min([len(prompt_ids)] + [common_prefix_length(prompt_ids, f) for f in fulls])
            tail = prompt_ids[cut:]
            return {"prompt_ids": prompt_ids[:cut], "chosen_ids": tail + example["chosen_ids"],
                    "rejected_ids": tail + example["rejected_ids"], "extra_rejected_ids": [f[cut:] for f in fulls]}

        return dataset.map(tokenize_extra, desc=f"Tokenizing the extra negatives of the {dataset_name} dataset")

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if "extra_rejected_ids" not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, "extra_rejected_ids"]

    def _compute_loss(self, model, inputs, return_outputs):
        mode = "train" if self.model.training else "eval"
        completion_mask = inputs["completion_mask"]
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], labels=labels,
                        use_cache=False, fused_lm_head=True)
        seq_len = completion_mask.shape[1] - 1  # the fused head scores each next token
        logps = outputs.log_probs[:, -seq_len:].sum(dim=1)  # zero where the label is -100
        # trl's reference forward (its frozen "ref" adapter, or its reference copy) on the same rows; it returns them
        # split in two halves, joined back here.
        ref_logps = torch.cat(self.compute_ref_log_probs(self.ref_model or model, inputs))
        # Rows are [chosen; rejected_1; ...; rejected_k], B each: (k+1, B) -> (B, k+1), column 0 is chosen.
        logps = logps.view(self.num_negatives + 1, -1).T
        logratios = logps - ref_logps.view(self.num_negatives + 1, -1).T
        chosen, rejected = logratios[:, 0], logratios[:, 1:]
        loss = self.multi_negative_loss(chosen, rejected, self.beta).mean()

        # The metrics trl logs for DPO; "rejected" is the mean over the k negatives, "accuracies" the share of prompts
        # whose chosen reward beats every rejected one.
        gather = self.accelerator.gather_for_metrics
        chosen_rewards, rejected_rewards = self.beta * chosen.detach(), self.beta * rejected.detach()
        logps = logps.detach()
        metrics = self._metrics[mode]
        metrics["rewards/chosen"].append(gather(chosen_rewards).mean().item())
        metrics["rewards/rejected"].append(gather(rejected_rewards.mean(1)).mean().item())
        metrics["rewards/accuracies"].append(
            gather((chosen_rewards[:, None] > rejected_rewards).all(1).float()).mean().item())
        metrics["rewards/margins"].append(gather(chosen_rewards - rejected_rewards.mean(1)).mean().item())
        metrics["logps/chosen"].append(gather(logps[:, 0]).mean().item())
        metrics["logps/rejected"].append(gather(logps[:, 1:].mean(1)).mean().item())
        return (loss, outputs) if return_outputs else loss


# ------------------------------------------------------------------------------------------------ weighted SFT
class AddRecordWeights:
    """Wraps trl's SFT collator: takes each example's `record_weight` out before trl collates it and adds them back
    as one (B,) tensor."""

    def __init__(self, collate):
        self.collate = collate

    def __call__(self, examples: list[dict]) -> dict:
        weights = torch.tensor([float(e["record_weight"]) for e in examples])
        batch = self.collate([{k: v for k, v in e.items() if k != "record_weight"} for e in examples])
        batch["record_weight"] = weights
        return batch


class WeightedSFTTrainer(SFTTrainer):
    """trl's SFTTrainer with a per-record weight (dataset column `record_weight`).

    trl's loss is −Σ_tokens log p / (number of trained tokens in the batch, across accumulation steps); scaling each
    row's token log-probs by its record's weight makes it −Σ_tokens w·log p / (the same count). With every weight 1
    it is trl's loss exactly; everything else (normalisation, metrics, what is trained: the completion only or the
    whole text) stays trl's.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.data_collator = AddRecordWeights(self.data_collator)

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if "record_weight" not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, "record_weight"]

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        weights = inputs.pop("record_weight")

        def weighted_model(**kwargs):  # the model, with each row's token log-probs scaled by its record's weight
            out = model(**kwargs)
            if getattr(out, "log_probs", None) is not None:  # the fused head trl computes its loss from
                out.log_probs = out.log_probs * weights[:, None].to(out.log_probs.dtype)
            return out

        return super().compute_loss(weighted_model, inputs, return_outputs, num_items_in_batch)
