"""Beginner PyTorch programs, re-written in our own words, each run twice by test_ports.py:
once on PyTorch and once on this library, given the same modules' names.

Each program takes `m` (a namespace with `torch`, `nn`, `F`, `optim`, `data`: either
PyTorch's or ours, as the import mapping gives them) and the same data and initial
weights as numpy arrays, and returns what it printed per epoch. The bodies use only the
calls the original programs use, spelled as there: the mapping of imports is the only
difference between the two runs.

Sources (their steps, not their text): PyTorch's "Learning PyTorch with examples"
(polynomial fit of sin), "What is torch.nn really?", the quickstart, and d2l's chapters
on linear regression, softmax regression and multilayer perceptrons.
"""

from __future__ import annotations

import math
import random


# -- "Learning PyTorch with examples": a cubic fitted to sin(x) ---------------------------

def polynomial_autograd(m, init, steps=300):
    """Tensors and autograd: y = a + b x + c x^2 + d x^3, gradient steps by hand."""
    torch = m.torch
    dtype = torch.float64
    x = torch.linspace(-math.pi, math.pi, 2000, dtype=dtype)
    y = torch.sin(x)
    a, b, c, d = (torch.tensor(v, dtype=dtype, requires_grad=True) for v in init)
    learning_rate = 1e-6
    losses = []
    for t in range(steps):
        y_pred = a + b * x + c * x ** 2 + d * x ** 3
        loss = (y_pred - y).pow(2).sum()
        if t % 50 == 49:
            losses.append(loss.item())
        loss.backward()
        with torch.no_grad():
            a -= learning_rate * a.grad
            b -= learning_rate * b.grad
            c -= learning_rate * c.grad
            d -= learning_rate * d.grad
            a.grad = None
            b.grad = None
            c.grad = None
            d.grad = None
    losses.append(f"y = {a.item():.6f} + {b.item():.6f} x + {c.item():.6f} x^2 + {d.item():.6f} x^3")
    return losses


def polynomial_function(m, init, steps=300):
    """A custom autograd Function: y = a + b P3(c + d x), P3 the Legendre polynomial of
    degree 3, with its derivative written by hand in backward."""
    torch = m.torch

    class LegendrePolynomial3(torch.autograd.Function):
        @staticmethod
        def forward(ctx, input):
            ctx.save_for_backward(input)
            return 0.5 * (5 * input ** 3 - 3 * input)

        @staticmethod
        def backward(ctx, grad_output):
            input, = ctx.saved_tensors
            return grad_output * 1.5 * (5 * input ** 2 - 1)

    dtype = torch.float
    x = torch.linspace(-math.pi, math.pi, 2000).to(dtype)
    y = torch.sin(x).to(dtype)
    a, b, c, d = (torch.full((), v, dtype=dtype, requires_grad=True)
                  for v in (0.0, -1.0, 0.0, 0.3))
    learning_rate = 5e-6
    losses = []
    for t in range(steps):
        P3 = LegendrePolynomial3.apply
        y_pred = a + b * P3(c + d * x)
        loss = (y_pred - y).pow(2).sum()
        if t % 50 == 49:
            losses.append(loss.item())
        loss.backward()
        with torch.no_grad():
            a -= learning_rate * a.grad
            b -= learning_rate * b.grad
            c -= learning_rate * c.grad
            d -= learning_rate * d.grad
            a.grad = None
            b.grad = None
            c.grad = None
            d.grad = None
    return losses


def polynomial_nn(m, init, steps=300):
    """torch.nn: the powers of x as features, Linear(3, 1) + Flatten(0, 1), MSELoss(sum),
    parameters updated by hand under no_grad."""
    torch, nn = m.torch, m.nn
    x = torch.linspace(-math.pi, math.pi, 2000)
    y = torch.sin(x)
    p = torch.tensor([1, 2, 3])
    xx = x.unsqueeze(-1).pow(p)
    model = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0, 1))
    model.load_state_dict({"0.weight": torch.tensor([init[1:]]),
                           "0.bias": torch.tensor([init[0]])})
    loss_fn = torch.nn.MSELoss(reduction="sum")
    learning_rate = 1e-6
    losses = []
    for t in range(steps):
        y_pred = model(xx)
        loss = loss_fn(y_pred, y)
        if t % 50 == 49:
            losses.append(loss.item())
        model.zero_grad()
        loss.backward()
        with torch.no_grad():
            for param in model.parameters():
                param -= learning_rate * param.grad
    linear_layer = model[0]
    losses.append(f"y = {linear_layer.bias.item():.6f} + {linear_layer.weight[:, 0].item():.6f} x"
                  f" + {linear_layer.weight[:, 1].item():.6f} x^2"
                  f" + {linear_layer.weight[:, 2].item():.6f} x^3")
    return losses


def polynomial_optim(m, init, steps=300):
    """torch.optim: the same model, RMSprop does the update."""
    torch = m.torch
    x = torch.linspace(-math.pi, math.pi, 2000)
    y = torch.sin(x)
    p = torch.tensor([1, 2, 3])
    xx = x.unsqueeze(-1).pow(p)
    model = torch.nn.Sequential(torch.nn.Linear(3, 1), torch.nn.Flatten(0, 1))
    model.load_state_dict({"0.weight": torch.tensor([init[1:]]),
                           "0.bias": torch.tensor([init[0]])})
    loss_fn = torch.nn.MSELoss(reduction="sum")
    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    losses = []
    for t in range(steps):
        y_pred = model(xx)
        loss = loss_fn(y_pred, y)
        if t % 50 == 49:
            losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return losses


def polynomial_module(m, init, steps=300):
    """A custom nn.Module with four scalar Parameters, trained with SGD."""
    torch = m.torch

    class Polynomial3(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c, self.d = (torch.nn.Parameter(torch.tensor(v)) for v in init)

        def forward(self, x):
            return self.a + self.b * x + self.c * x ** 2 + self.d * x ** 3

        def string(self):
            return (f"y = {self.a.item():.6f} + {self.b.item():.6f} x + {self.c.item():.6f} x^2"
                    f" + {self.d.item():.6f} x^3")

    x = torch.linspace(-math.pi, math.pi, 2000)
    y = torch.sin(x)
    model = Polynomial3()
    criterion = torch.nn.MSELoss(reduction="sum")
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-6)
    losses = []
    for t in range(steps):
        y_pred = model(x)
        loss = criterion(y_pred, y)
        if t % 50 == 49:
            losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    losses.append(model.string())
    return losses


def polynomial_dynamic(m, init, steps=200):
    """Dynamic control flow: a fourth- or fifth-order polynomial chosen at random on every
    forward pass (Python's `random`, seeded the same for both runs), the fifth-order weight
    reused; SGD with momentum."""
    torch = m.torch

    class DynamicNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b, self.c, self.d, self.e = (torch.nn.Parameter(torch.tensor(v))
                                                      for v in init + [0.01])

        def forward(self, x):
            y = self.a + self.b * x + self.c * x ** 2 + self.d * x ** 3
            for exp in range(4, random.randint(4, 6)):
                y = y + self.e * x ** exp
            return y

    random.seed(5)
    x = torch.linspace(-math.pi, math.pi, 2000)
    y = torch.sin(x)
    model = DynamicNet()
    criterion = torch.nn.MSELoss(reduction="sum")
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-8, momentum=0.9)
    losses = []
    for t in range(steps):
        y_pred = model(x)
        loss = criterion(y_pred, y)
        if t % 40 == 39:
            losses.append(loss.item())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return losses


# -- d2l: linear regression from scratch ---------------------------------------------------

def d2l_linear_regression_scratch(m, features_np, labels_np, w_init, num_epochs=3):
    torch = m.torch
    features, labels = torch.tensor(features_np), torch.tensor(labels_np)

    def data_iter(batch_size, features, labels):
        num_examples = len(features)
        indices = list(range(num_examples))
        random.shuffle(indices)  # the examples are read in random order
        for i in range(0, num_examples, batch_size):
            batch_indices = torch.tensor(indices[i: min(i + batch_size, num_examples)])
            yield features[batch_indices], labels[batch_indices]

    w = torch.tensor(w_init, requires_grad=True)
    b = torch.zeros(1, requires_grad=True)

    def linreg(X, w, b):
        return torch.matmul(X, w) + b

    def squared_loss(y_hat, y):
        return (y_hat - y.reshape(y_hat.shape)) ** 2 / 2

    def sgd(params, lr, batch_size):
        with torch.no_grad():
            for param in params:
                param -= lr * param.grad / batch_size
                param.grad.zero_()

    lr, batch_size = 0.03, 10
    net, loss = linreg, squared_loss
    random.seed(7)
    printed = []
    for epoch in range(num_epochs):
        for X, y in data_iter(batch_size, features, labels):
            l = loss(net(X, w, b), y)  # noqa: E741 (the book's name)
            l.sum().backward()
            sgd([w, b], lr, batch_size)
        with torch.no_grad():
            train_l = loss(net(features, w, b), labels)
            printed.append(f"epoch {epoch + 1}, loss {float(train_l.mean()):f}")
            printed.append(float(train_l.mean()))
    printed.append(w.detach().numpy().tolist())
    printed.append(b.detach().numpy().tolist())
    return printed


# -- d2l: softmax regression from scratch --------------------------------------------------

def d2l_softmax_scratch(m, train, test, W_init, num_epochs=3, batch_size=64):
    torch = m.torch
    X_train, y_train = torch.tensor(train[0]), torch.tensor(train[1])
    X_test, y_test = torch.tensor(test[0]), torch.tensor(test[1])
    num_inputs, num_outputs = W_init.shape
    W = torch.tensor(W_init, requires_grad=True)
    b = torch.zeros(num_outputs, requires_grad=True)

    def softmax(X):
        X_exp = torch.exp(X)
        partition = X_exp.sum(1, keepdim=True)
        return X_exp / partition  # broadcasting

    def net(X):
        return softmax(torch.matmul(X.reshape((-1, W.shape[0])), W) + b)

    def cross_entropy(y_hat, y):
        return - torch.log(y_hat[range(len(y_hat)), y])

    def accuracy(y_hat, y):
        if len(y_hat.shape) > 1 and y_hat.shape[1] > 1:
            y_hat = y_hat.argmax(axis=1)
        cmp = y_hat.type(y.dtype) == y
        return float(cmp.type(y.dtype).sum())

    def batches(X, y):  # in order: the book's loader shuffles, which the two runs can't share
        for i in range(0, len(X), batch_size):
            yield X[i:i + batch_size], y[i:i + batch_size]

    def evaluate_accuracy(net, X, y):
        metric = [0.0, 0.0]
        with torch.no_grad():
            for Xb, yb in batches(X, y):
                metric[0] += accuracy(net(Xb), yb)
                metric[1] += yb.numel()
        return metric[0] / metric[1]

    def updater(batch_size, lr=0.1):
        with torch.no_grad():
            for param in [W, b]:
                param -= lr * param.grad / batch_size
                param.grad.zero_()

    printed = []
    for epoch in range(num_epochs):
        total_loss, total_acc, n = 0.0, 0.0, 0
        for Xb, yb in batches(X_train, y_train):
            y_hat = net(Xb)
            l = cross_entropy(y_hat, yb)  # noqa: E741
            l.sum().backward()
            updater(Xb.shape[0])
            total_loss += float(l.sum())
            total_acc += accuracy(y_hat, yb)
            n += yb.numel()
        printed.append((total_loss / n, total_acc / n, evaluate_accuracy(net, X_test, y_test)))
    return printed


# -- d2l: multilayer perceptron from scratch -----------------------------------------------

def d2l_mlp_scratch(m, train, weights, num_epochs=3, batch_size=64, lr=0.1):
    torch, nn = m.torch, m.nn
    X_train, y_train = torch.tensor(train[0]), torch.tensor(train[1])
    W1 = nn.Parameter(torch.tensor(weights["W1"], requires_grad=True))
    b1 = nn.Parameter(torch.zeros(weights["W1"].shape[1], requires_grad=True))
    W2 = nn.Parameter(torch.tensor(weights["W2"], requires_grad=True))
    b2 = nn.Parameter(torch.zeros(weights["W2"].shape[1], requires_grad=True))
    params = [W1, b1, W2, b2]
    num_inputs = weights["W1"].shape[0]

    def relu(X):
        a = torch.zeros_like(X)
        return torch.max(X, a)

    def net(X):
        X = X.reshape((-1, num_inputs))
        H = relu(X @ W1 + b1)  # "@" is matrix multiplication
        return (H @ W2 + b2)

    loss = nn.CrossEntropyLoss(reduction="none")
    updater = torch.optim.SGD(params, lr=lr)
    printed = []
    for epoch in range(num_epochs):
        total, n = 0.0, 0
        for i in range(0, len(X_train), batch_size):
            X, y = X_train[i:i + batch_size], y_train[i:i + batch_size]
            y_hat = net(X)
            l = loss(y_hat, y)  # noqa: E741
            updater.zero_grad()
            l.mean().backward()
            updater.step()
            total += float(l.sum())
            n += y.numel()
        printed.append(total / n)
    return printed


# -- "What is torch.nn really?": from hand-written logistic regression to DataLoader ------

def nn_really_from_scratch(m, train, W_init, epochs=2, bs=64, lr=0.5):
    """Stage 1: weights as tensors, log_softmax and nll written by hand."""
    torch = m.torch
    x_train, y_train = map(torch.tensor, train)
    n, c = x_train.shape
    weights = torch.tensor(W_init)
    weights.requires_grad_()
    bias = torch.zeros(10, requires_grad=True)

    def log_softmax(x):
        return x - x.exp().sum(-1).log().unsqueeze(-1)

    def model(xb):
        return log_softmax(xb @ weights + bias)

    def nll(input, target):
        return -input[range(target.shape[0]), target].mean()

    def accuracy(out, yb):
        preds = torch.argmax(out, dim=1)
        return (preds == yb).float().mean()

    loss_func = nll
    printed = []
    for epoch in range(epochs):
        for i in range((n - 1) // bs + 1):
            start_i = i * bs
            end_i = start_i + bs
            xb = x_train[start_i:end_i]
            yb = y_train[start_i:end_i]
            pred = model(xb)
            loss = loss_func(pred, yb)
            loss.backward()
            with torch.no_grad():
                weights -= weights.grad * lr
                bias -= bias.grad * lr
                weights.grad.zero_()
                bias.grad.zero_()
        printed.append((loss_func(model(x_train), y_train).item(),
                        accuracy(model(x_train), y_train).item()))
    return printed


def nn_really_refactored(m, train, valid, W_init, epochs=2, bs=64, lr=0.5):
    """The later stages: F.cross_entropy, an nn.Module with nn.Linear, optim.SGD,
    TensorDataset and DataLoader, validation in eval mode, a fit() and get_model()."""
    torch, nn, F, optim = m.torch, m.nn, m.F, m.optim
    TensorDataset, DataLoader = m.data.TensorDataset, m.data.DataLoader
    x_train, y_train, x_valid, y_valid = map(torch.tensor, (*train, *valid))

    class Mnist_Logistic(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(64, 10)

        def forward(self, xb):
            return self.lin(xb)

    def get_model():
        model = Mnist_Logistic()
        with torch.no_grad():
            model.lin.weight.copy_(torch.tensor(W_init.T))
            model.lin.bias.zero_()
        return model, optim.SGD(model.parameters(), lr=lr)

    def get_data(train_ds, valid_ds, bs):
        return (DataLoader(train_ds, batch_size=bs, shuffle=False),
                DataLoader(valid_ds, batch_size=bs * 2))

    loss_func = F.cross_entropy

    def loss_batch(model, loss_func, xb, yb, opt=None):
        loss = loss_func(model(xb), yb)
        if opt is not None:
            loss.backward()
            opt.step()
            opt.zero_grad()
        return loss.item(), len(xb)

    printed = []

    def fit(epochs, model, loss_func, opt, train_dl, valid_dl):
        import numpy as np
        for epoch in range(epochs):
            model.train()
            for xb, yb in train_dl:
                loss_batch(model, loss_func, xb, yb, opt)
            model.eval()
            with torch.no_grad():
                losses, nums = zip(*[loss_batch(model, loss_func, xb, yb) for xb, yb in valid_dl])
            val_loss = np.sum(np.multiply(losses, nums)) / np.sum(nums)
            printed.append((epoch, float(val_loss)))
            # (the tutorial's earlier form of the same number)
            printed.append(float(sum(loss_func(model(xb), yb) for xb, yb in valid_dl)
                                 / len(valid_dl)))

    train_ds = TensorDataset(x_train, y_train)
    valid_ds = TensorDataset(x_valid, y_valid)
    train_dl, valid_dl = get_data(train_ds, valid_ds, bs)
    model, opt = get_model()
    fit(epochs, model, loss_func, opt, train_dl, valid_dl)
    printed.append(len(train_dl.dataset))
    return printed


# -- PyTorch's quickstart: a Flatten + Sequential network, train and test loops, save ------

def quickstart(m, train, test, state, path, epochs=3):
    torch, nn = m.torch, m.nn
    DataLoader, TensorDataset = m.data.DataLoader, m.data.TensorDataset
    batch_size = 64
    train_dataloader = DataLoader(TensorDataset(*map(torch.tensor, train)), batch_size=batch_size)
    test_dataloader = DataLoader(TensorDataset(*map(torch.tensor, test)), batch_size=batch_size)
    device = (torch.accelerator.current_accelerator().type
              if torch.accelerator.is_available() else "cpu")

    class NeuralNetwork(nn.Module):
        def __init__(self):
            super().__init__()
            self.flatten = nn.Flatten()
            self.linear_relu_stack = nn.Sequential(
                nn.Linear(8 * 8, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 10))

        def forward(self, x):
            x = self.flatten(x)
            logits = self.linear_relu_stack(x)
            return logits

    model = NeuralNetwork().to(device)
    model.load_state_dict({k: torch.tensor(v) for k, v in state.items()})
    loss_fn = nn.CrossEntropyLoss()
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-1)
    printed = []

    def train_loop(dataloader, model, loss_fn, optimizer):
        size = len(dataloader.dataset)
        model.train()
        for batch, (X, y) in enumerate(dataloader):
            X, y = X.to(device), y.to(device)
            pred = model(X)
            loss = loss_fn(pred, y)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            if batch % 10 == 0:
                loss, current = loss.item(), (batch + 1) * len(X)
                printed.append(f"loss: {loss:>7f}  [{current:>5d}/{size:>5d}]")

    def test_loop(dataloader, model, loss_fn):
        size = len(dataloader.dataset)
        num_batches = len(dataloader)
        model.eval()
        test_loss, correct = 0, 0
        with torch.no_grad():
            for X, y in dataloader:
                X, y = X.to(device), y.to(device)
                pred = model(X)
                test_loss += loss_fn(pred, y).item()
                correct += (pred.argmax(1) == y).type(torch.float).sum().item()
        test_loss /= num_batches
        correct /= size
        printed.append(f"Test Error: \n Accuracy: {(100*correct):>0.1f}%, Avg loss: {test_loss:>8f} \n")
        printed.append(test_loss)

    for t in range(epochs):
        train_loop(train_dataloader, model, loss_fn, optimizer)
        test_loop(test_dataloader, model, loss_fn)
    torch.save(model.state_dict(), path)
    model = NeuralNetwork().to(device)
    model.load_state_dict(torch.load(path, weights_only=True))
    model.eval()
    x, y = torch.tensor(test[0][:1]), int(test[1][0])
    with torch.no_grad():
        pred = model(x)
        printed.append((pred[0].argmax(0).item(), y))
    return printed


# -- d2l's concise chapters: nn.Sequential, net.apply(init_weights), the data API --------

def d2l_softmax_concise(m, train, test, num_epochs=3, batch_size=64):
    torch, nn, data = m.torch, m.nn, m.data
    train_iter = data.DataLoader(data.TensorDataset(*map(torch.tensor, train)), batch_size)
    test_iter = data.DataLoader(data.TensorDataset(*map(torch.tensor, test)), batch_size)
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    def init_weights(m):
        if type(m) == nn.Linear:
            nn.init.normal_(m.weight, std=0.01)

    torch.manual_seed(0)
    net.apply(init_weights)
    first = net[1].weight.detach().numpy().copy()
    with torch.no_grad():  # the two libraries draw differently: start from the same weights
        net[1].weight.copy_(torch.tensor(_fixed((10, 64), 0.01, 3)))
        net[1].bias.zero_()
    loss = nn.CrossEntropyLoss(reduction="none")
    trainer = torch.optim.SGD(net.parameters(), lr=0.1)
    printed = [float(first.std() < 0.02)]
    for epoch in range(num_epochs):
        if isinstance(net, torch.nn.Module):
            net.train()
        total, n = 0.0, 0
        for X, y in train_iter:
            y_hat = net(X)
            l = loss(y_hat, y)  # noqa: E741
            if isinstance(trainer, torch.optim.Optimizer):
                trainer.zero_grad()
                l.mean().backward()
                trainer.step()
            total += float(l.sum())
            n += y.numel()
        net.eval()
        correct = sum(float((net(X).argmax(axis=1).type(y.dtype) == y).type(y.dtype).sum())
                      for X, y in test_iter)
        printed.append((total / n, correct / len(test_iter.dataset)))
    return printed


def d2l_mlp_concise(m, train, num_epochs=3, batch_size=64, lr=0.1):
    torch, nn, data = m.torch, m.nn, m.data
    net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))

    def init_weights(m):
        if type(m) == nn.Linear:
            nn.init.normal_(m.weight, std=0.01)

    net.apply(init_weights)
    net.load_state_dict({k: torch.tensor(_fixed(tuple(v.shape), 0.01, i))
                         for i, (k, v) in enumerate(net.state_dict().items())})
    loss = nn.CrossEntropyLoss(reduction="none")
    trainer = torch.optim.SGD(net.parameters(), lr=lr)
    train_iter = data.DataLoader(data.TensorDataset(*map(torch.tensor, train)), batch_size)
    printed = []
    for epoch in range(num_epochs):
        total, n = 0.0, 0
        for X, y in train_iter:
            l = loss(net(X), y)  # noqa: E741
            trainer.zero_grad()
            l.mean().backward()
            trainer.step()
            total += float(l.sum())
            n += y.numel()
        printed.append(total / n)
    return printed


def _fixed(shape, scale, seed):
    import numpy as np
    return scale * np.random.default_rng(seed).standard_normal(shape)
