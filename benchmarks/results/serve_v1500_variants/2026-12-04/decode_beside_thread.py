import threading, time, torch, numpy as np
from paramcast import wire
from paramcast.types import Upload
torch.set_num_threads(2)
up = wire.encode(Upload(device_id="bench-000", method="cdc-mmpg", task="videoqa", model_version="v1", features=torch.randn(1,192)))
stop = False
def busy():
    x = torch.randn(8, 96); w = torch.randn(96, 96)
    while not stop:
        for _ in range(50):
            y = torch.nn.functional.gelu(x @ w)
        s = sum(i for i in range(2000))
def run(n=3000):
    t0 = time.perf_counter()
    for _ in range(n):
        u = wire.decode(up)
    return (time.perf_counter() - t0) / n * 1e6
print(wire.__file__)
print("alone us/decode", round(run(), 1))
th = threading.Thread(target=busy); th.start(); time.sleep(0.2)
print("beside busy thread us/decode", round(run(), 1))
stop = True; th.join()
