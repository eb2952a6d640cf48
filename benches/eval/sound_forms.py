"""Which text form of a sound's YAMNet labels finds it best (docs/MODELS.md, "Sound ->
labels -> text"): every freedesktop sound (Debian sound-theme-freedesktop) is classified
with the installed float YAMNet and the NumPy reference front end, represented by each
form below in MiniLM's space (the ONNX graph the set-up built), and the eval's sound
queries (Q) and five others (H) rank the 35 sounds. Needs numpy, onnxruntime (pinned by
.ci/models.sh) and tokenizers (pip).
"""
import numpy as np, onnxruntime as ort, subprocess, glob, os, sys
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'models', 'tests', 'reference'))
import yamnet_reference as yr
from tokenizers import Tokenizer
M = os.path.expanduser('~/.cache/agentdb/models')
ys = ort.InferenceSession(f'{M}/yamnet/model.onnx', providers=['CPUExecutionProvider'])
names = open(f'{M}/yamnet/yamnet-labels.txt').read().splitlines()
tok = Tokenizer.from_file(f'{M}/all-minilm-l6-v2/onnx/tokenizer.json'); tok.enable_padding(); tok.enable_truncation(256)
ms = ort.InferenceSession(f'{M}/all-minilm-l6-v2/onnx/model.onnx', providers=['CPUExecutionProvider'])
def emb(texts):
    e = tok.encode_batch(texts)
    ids = np.array([x.ids for x in e], np.int64); am = np.array([x.attention_mask for x in e], np.int64)
    feeds = {'input_ids': ids, 'attention_mask': am, 'token_type_ids': np.zeros_like(ids)}
    feeds = {k: v for k, v in feeds.items() if k in [i.name for i in ms.get_inputs()]}
    v = ms.run(['sentence_embedding'], feeds)[0]
    return v / np.linalg.norm(v, axis=1, keepdims=True)
files = sorted(glob.glob('/usr/share/sounds/freedesktop/stereo/*.oga'))
S = {}
for f in files:
    pcm = subprocess.run(['ffmpeg','-loglevel','error','-i',f,'-ac','1','-ar','16000','-f','f32le','-'],capture_output=True).stdout
    x = np.frombuffer(pcm, '<f4')
    l = ys.run(None, {'audio': yr.patches(yr.log_mel(x))})[0]
    S[os.path.basename(f)] = (1/(1+np.exp(-np.clip(l, -80, 80)))).mean(0)
Q = [("a bell ringing","bell.oga"),("a phone ringing","phone-incoming-call.oga"),("incoming phone call ringtone","phone-incoming-call.oga"),
     ("an alarm clock going off","alarm-clock-elapsed.oga"),("the click of a camera shutter","camera-shutter.oga"),("a warning beep","dialog-warning.oga"),
     ("new message notification sound","message-new-instant.oga"),("paper being crumpled in the bin","trash-empty.oga"),("a short chime when something is done","complete.oga")]
H = [("a busy signal on the phone","phone-outgoing-busy.oga"),("white noise test signal","audio-test-signal.oga"),("calling someone on the phone, waiting for an answer","phone-outgoing-calling.oga"),
     ("a voice saying rear left","audio-channel-rear-left.oga"),("an error sound","suspend-error.oga")]
allprompts = {}
def pe(label, prompt):
    k=(label,prompt)
    if k not in allprompts: allprompts[k]=emb([prompt.format(label.lower())])[0]
    return allprompts[k]
def rep_composed(s, k, thr, prompt="the sound of {}"):
    o = np.argsort(-s)[:k]; o=[c for i,c in enumerate(o) if i==0 or s[c]>=thr]
    return emb([prompt.format(", ".join(names[c].lower() for c in o))])[0]
def rep_weighted(s, k, prompt="the sound of {}"):
    o = np.argsort(-s)[:k]; v = sum(s[c]*pe(names[c],prompt) for c in o); return v/np.linalg.norm(v)
variants = {
 'composed k6 t.05': lambda s: rep_composed(s,6,.05),
 'composed k3 t.05': lambda s: rep_composed(s,3,.05),
 'composed k10 t.02': lambda s: rep_composed(s,10,.02),
 'composed k6 t.05 noprompt': lambda s: rep_composed(s,6,.05,"{}"),
 'weighted k3': lambda s: rep_weighted(s,3),
 'weighted k6': lambda s: rep_weighted(s,6),
 'weighted k10': lambda s: rep_weighted(s,10),
 'weighted k10 noprompt': lambda s: rep_weighted(s,10,"{}"),
}
keys = list(S)
for name, fn in variants.items():
    R = np.stack([fn(S[k]) for k in keys])
    out=[]
    for qs in (Q,H):
        qe = emb([q for q,_ in qs]); ranks=[]
        for (q,rel),e in zip(qs,qe):
            sims = R@e; order=np.argsort(-sims); ranks.append(1+[keys[i] for i in order].index(rel))
        out.append(ranks)
    s5=lambda r: np.mean([x<=5 for x in r]); mrr=lambda r: np.mean([1/x for x in r])
    print(f"{name:28s} eval ranks {out[0]} S@5 {s5(out[0]):.2f} MRR {mrr(out[0]):.2f} | other {out[1]} S@5 {s5(out[1]):.2f}")
