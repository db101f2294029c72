"""Reads a legacy (non-zip) PyTorch pickle file without torch: returns {name: numpy array}."""
import pickle, struct, collections
import numpy as np

DTYPES = {'FloatStorage': np.float32, 'DoubleStorage': np.float64, 'HalfStorage': np.float16,
          'LongStorage': np.int64, 'IntStorage': np.int32, 'ShortStorage': np.int16,
          'CharStorage': np.int8, 'ByteStorage': np.uint8, 'BoolStorage': np.bool_}

class StorageType:
    def __init__(self, name): self.name = name

def rebuild_tensor(storage, offset, size, stride, *args):
    return ('tensor', storage, offset, tuple(size), tuple(stride))

class Unpickler(pickle.Unpickler):
    def __init__(self, f, storages):
        super().__init__(f)
        self.storages = storages
    def find_class(self, module, name):
        if module == 'torch._utils' and name in ('_rebuild_tensor_v2', '_rebuild_tensor'):
            return rebuild_tensor
        if module == 'torch' and name in DTYPES:
            return StorageType(name)
        if module == 'collections' and name == 'OrderedDict':
            return collections.OrderedDict
        raise pickle.UnpicklingError(f'refusing {module}.{name}')
    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata])
        _, stype, key, _location, numel = pid[:5]
        self.storages.setdefault(key, (stype.name, numel))
        return key

def load(path):
    with open(path, 'rb') as f:
        magic = pickle.load(f)
        assert magic == 0x1950a86a20f9469cfc6c, 'not a legacy torch file'
        pickle.load(f)  # protocol version
        pickle.load(f)  # sys info
        storages = {}
        obj = Unpickler(f, storages).load()
        keys = pickle.load(f)
        data = {}
        for key in keys:
            (n,) = struct.unpack('<q', f.read(8))
            stype, numel = storages[key]
            dt = np.dtype(DTYPES[stype])
            data[key] = np.frombuffer(f.read(n * dt.itemsize), dtype=dt)
    out = collections.OrderedDict()
    for name, (_, key, offset, size, stride) in obj.items():
        flat = data[key]
        arr = np.lib.stride_tricks.as_strided(flat[offset:], shape=size, strides=[s * flat.itemsize for s in stride]) if size else flat[offset:offset + 1].reshape(())
        out[name] = np.ascontiguousarray(arr)
    return out

if __name__ == '__main__':
    import sys
    sd = load(sys.argv[1])
    for k, v in list(sd.items()):
        print(k, v.shape, v.dtype)
