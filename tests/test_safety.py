"""Safe by default, checked over the Python sources: remote code only from an explicit flag, weights loaded and saved
as safetensors only, no torch.load without weights_only=True, no pickle of anything."""
import ast
import json

import pytest
from conftest import ROOT

from utils.io import UserError

PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "joblib", "cloudpickle", "shelve", "marshal"}


def sources() -> dict:
    files = [p for p in ROOT.rglob("*.py") if not any(part.startswith(".") for part in p.relative_to(ROOT).parts)]
    assert len(files) > 20
    return {str(p.relative_to(ROOT)): ast.parse(p.read_text(encoding="utf-8"), str(p)) for p in files}


def calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            receiver = ast.unparse(func.value) if isinstance(func, ast.Attribute) else ""
            yield node, name, receiver


def keyword_is(call: ast.Call, key: str, value) -> bool:
    return any(k.arg == key and isinstance(k.value, ast.Constant) and k.value.value is value for k in call.keywords)


def test_trust_remote_code_only_from_an_explicit_flag():
    bad = []
    for path, tree in sources().items():
        for node in ast.walk(tree):
            if isinstance(node, ast.keyword) and node.arg == "trust_remote_code":
                if not (isinstance(node.value, ast.Name) and node.value.id == "trust_remote_code"
                        or isinstance(node.value, ast.Attribute) and node.value.attr == "trust_remote_code"
                        or isinstance(node.value, ast.Constant) and node.value.value is False):
                    bad.append(f"{path}:{node.value.lineno}: trust_remote_code={ast.unparse(node.value)}")
            if (isinstance(node, ast.AnnAssign) and getattr(node.target, "id", "") == "trust_remote_code"
                    and not (isinstance(node.value, ast.Constant) and node.value.value is False)):
                bad.append(f"{path}:{node.lineno}: a stage's Args field trust_remote_code defaults to "
                           f"{ast.unparse(node.value) if node.value else 'nothing'}")  # the Args dataclasses
            if isinstance(node, ast.arguments):  # a parameter named trust_remote_code defaults to False
                args = node.posonlyargs + node.args
                pairs = list(zip(args[len(args) - len(node.defaults):], node.defaults))
                pairs += [(a, d) for a, d in zip(node.kwonlyargs, node.kw_defaults) if d is not None]
                for a, d in pairs:
                    if a.arg == "trust_remote_code" and not (isinstance(d, ast.Constant) and d.value is False):
                        bad.append(f"{path}:{a.lineno}: trust_remote_code defaults to {ast.unparse(d)}")
    assert not bad, bad


def test_weights_are_safetensors_only():
    bad, seen = [], {"from_pretrained": 0, "save_pretrained": 0, "SentenceTransformer": 0}
    for path, tree in sources().items():
        for call, name, receiver in calls(tree):
            where = f"{path}:{call.lineno}: {ast.unparse(call)[:100]}"
            if name == "from_pretrained" and "Tokenizer" not in receiver and "Config" not in receiver:
                seen[name] += 1
                # PeftModel has no such flag: utils/modeling.load_model refuses an adapter without
                # adapter_model.safetensors before calling it (test below). A `gguf_file` load (utils/pretrained.py)
                # reads GGUF, a plain tensor format that, like safetensors, cannot carry code.
                if receiver != "PeftModel" and not keyword_is(call, "use_safetensors", True) \
                        and not any(k.arg == "gguf_file" for k in call.keywords):
                    bad.append(where)
            elif name == "save_pretrained" and "tok" not in receiver.lower():
                seen[name] += 1
                if not keyword_is(call, "safe_serialization", True):
                    bad.append(where)
            elif name in ("SentenceTransformer", "Transformer") and call.args:  # loads from a path
                seen["SentenceTransformer"] += name == "SentenceTransformer"
                if "'use_safetensors': True" not in ast.unparse(call):
                    bad.append(where)
            if any(k.arg in ("safe_serialization", "save_safetensors", "use_safetensors")
                   and isinstance(k.value, ast.Constant) and k.value.value is False for k in call.keywords):
                bad.append(where)
    assert not bad, bad
    assert all(seen.values()), seen  # the checks above looked at the real loading and saving code


def test_no_unsafe_torch_load_and_no_pickle():
    bad = []
    for path, tree in sources().items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                if any(n.split(".")[0] in PICKLE_MODULES for n in names):
                    bad.append(f"{path}:{node.lineno}: imports {names}")
        for call, name, receiver in calls(tree):
            where = f"{path}:{call.lineno}: {ast.unparse(call)[:100]}"
            if name == "load" and receiver == "torch" and not keyword_is(call, "weights_only", True):
                bad.append(where)
            if name == "save" and receiver == "torch" or name in ("read_pickle", "to_pickle"):
                bad.append(where)
            if keyword_is(call, "allow_pickle", True):
                bad.append(where)
    assert not bad, bad


def test_adapter_weights_load_from_safetensors_only(tmp_path):
    from utils.modeling import load_model

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tmp_path)}))
    (adapter / "adapter_model.bin").write_bytes(b"not loaded")
    with pytest.raises(UserError, match="no adapter_model.safetensors"):
        load_model(adapter)
