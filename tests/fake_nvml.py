"""A stand-in for the `pynvml` module, for machines without a GPU.

Only the functions the monitor calls, with the units NVML uses (mW, mJ, bytes).
The real path is exercised by tests marked `gpu` on a machine with one.
"""

from types import SimpleNamespace


class NVMLError(Exception):
    pass


class FakeNvml:
    NVML_TEMPERATURE_GPU = 0
    NVML_CLOCK_SM = 1
    NVML_CLOCK_MEM = 2

    def __init__(self, util=80.0, power_mw=250_000, energy_counter=True, gpus=1, mem_used=10 * 2**30):
        """`util` and `mem_used` may be lists: each read takes the next value, round and round."""
        self.power_mw, self.energy_counter, self.gpus = power_mw, energy_counter, gpus
        self.util = util if isinstance(util, list) else [util]
        self.mem_used = mem_used if isinstance(mem_used, list) else [mem_used]
        self.reads = {"util": 0, "mem": 0}
        self.energy_mj = 1_000_000.0
        self.shutdown = False

    def nvmlInit(self):
        pass

    def nvmlShutdown(self):
        self.shutdown = True

    def nvmlDeviceGetCount(self):
        return self.gpus

    def nvmlDeviceGetHandleByIndex(self, i):
        if i >= self.gpus:
            raise NVMLError("Invalid Argument")
        return i

    def nvmlDeviceGetHandleByUUID(self, uuid):
        return int(uuid.rsplit("-", 1)[1])

    def nvmlDeviceGetIndex(self, h):
        return h

    def nvmlDeviceGetMinorNumber(self, h):
        return 7 - h  # /dev/nvidia<minor>: not the index, as on hosts where the two differ

    def nvmlDeviceGetName(self, h):
        return b"NVIDIA Fake 100"

    def nvmlDeviceGetUUID(self, h):
        return f"GPU-fake-{h}"

    def nvmlDeviceGetMemoryInfo(self, h):
        self.reads["mem"] += 1
        return SimpleNamespace(total=80 * 2**30, used=self.mem_used[(self.reads["mem"] - 1) % len(self.mem_used)])

    def nvmlDeviceGetUtilizationRates(self, h):
        self.reads["util"] += 1
        return SimpleNamespace(gpu=self.util[(self.reads["util"] - 1) % len(self.util)], memory=10)

    def nvmlDeviceGetPowerUsage(self, h):
        return self.power_mw

    def nvmlDeviceGetTotalEnergyConsumption(self, h):
        if not self.energy_counter:
            raise NVMLError("Not Supported")
        self.energy_mj += 1000.0  # 1 J more every time it is read
        return self.energy_mj

    def nvmlDeviceGetTemperature(self, h, sensor):
        return 65

    def nvmlDeviceGetClockInfo(self, h, clock):
        return 1980 if clock == self.NVML_CLOCK_SM else 2619

    def nvmlDeviceGetPowerManagementLimit(self, h):
        return 700_000

    def nvmlSystemGetDriverVersion(self):
        return "999.1"

    def nvmlSystemGetCudaDriverVersion(self):
        return 13000
