//! Activations: elementwise nonlinearities and their softmax relatives.

use crate::{required, Fact, Op, OpContext, Registry, Result, TensorMut, TensorRef};

pub fn register(r: &mut Registry) {
    r.register("Relu", |_ctx: &OpContext| Ok(Box::new(Relu)));
}

/// `max(x, 0)`.
#[derive(Debug)]
struct Relu;

impl Op for Relu {
    fn op_type(&self) -> &str {
        "Relu"
    }

    fn infer(&self, inputs: &[Option<&Fact>]) -> Result<Vec<Fact>> {
        let x = required(inputs, 0, self.op_type())?;
        Ok(vec![Fact::new(x.dtype, x.shape.clone())])
    }

    fn run(&self, inputs: &[Option<TensorRef>], outputs: &mut [TensorMut]) -> Result<()> {
        let x = required(inputs, 0, self.op_type())?.f32s()?;
        let y = outputs[0].f32s_mut()?;
        for (y, &x) in y.iter_mut().zip(x) {
            *y = x.max(0.0);
        }
        Ok(())
    }
}
