pub fn dummy(){}
